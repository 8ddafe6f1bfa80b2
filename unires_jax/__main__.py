import sys

from unires_jax.cli.main import main

sys.exit(main())
