"""`python -m unires_jax.train --config configs/NAME.py --workdir DIR [--config.key=value ...]`."""

import sys

from unires_jax.cli.train import main

sys.exit(main(sys.argv[1:]))
