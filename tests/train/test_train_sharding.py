"""The logical-axis rule table and the mesh."""

import logging

import jax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P
from trainer_toy_task import abstract_toy_net

from unires_jax.models import partitioning
from unires_jax.train import sharding


def test_every_model_logical_axis_has_a_rule():
    ruled = {name for name, _ in sharding.LOGICAL_RULES}
    assert partitioning.ALL_LOGICAL_AXES <= ruled, partitioning.ALL_LOGICAL_AXES - ruled


def test_rules_name_only_mesh_axes():
    for name, axes in sharding.LOGICAL_RULES:
        axes = () if axes is None else (axes,) if isinstance(axes, str) else axes
        assert set(axes) <= set(sharding.MESH_AXES), name


def test_unknown_logical_name_is_an_error_naming_the_table():
    mesh = sharding.make_mesh(8, 1)
    with pytest.raises(KeyError, match="LOGICAL_RULES"):
        sharding.logical_to_spec(("kh", "heads_typo"), (3, 8), mesh)


@pytest.mark.parametrize(
    "sizes, shape",
    [
        ((-1, 1, 1), (8, 1, 1)),
        ((2, -1, 1), (2, 4, 1)),
        ((2, 2, 2), (2, 2, 2)),
        ((4, 1, 1), (4, 1, 1)),
    ],
)
def test_make_mesh_shapes(sizes, shape):
    mesh = sharding.make_mesh(*sizes)
    assert mesh.axis_names == sharding.MESH_AXES
    assert tuple(mesh.shape.values()) == shape


def test_make_mesh_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="only 8 are available"):
        sharding.make_mesh(4, 4)
    with pytest.raises(ValueError, match="not divisible by 3"):
        sharding.make_mesh(-1, 3)


def test_conv_kernel_sharded_on_fsdp_and_indivisible_dims_replicated():
    mesh = sharding.make_mesh(2, 4)
    spec, notes = sharding.logical_to_spec(
        partitioning.CONV_KERNEL, (3, 3, 8, 16), mesh
    )
    assert spec == P(None, None, None, "fsdp") and not notes
    spec, notes = sharding.logical_to_spec(
        partitioning.CONV_KERNEL, (3, 3, 16, 3), mesh
    )
    assert spec == P(None, None, None, None) and "c_out=3" in notes[0]


def test_tensor_axis_splits_input_channels():
    mesh = sharding.make_mesh(2, 2, 2)
    spec, _ = sharding.logical_to_spec(partitioning.DENSE_KERNEL, (16, 32), mesh)
    assert spec == P("tensor", "fsdp")


def test_batch_is_split_over_data_and_fsdp():
    assert sharding.batch_sharding(sharding.make_mesh(2, 4)).spec == P(("data", "fsdp"))
    assert sharding.batch_sharding(sharding.make_mesh(8, 1)).spec == P("data")


def test_state_shardings_of_a_model_log_replication_fallbacks(caplog):
    with nnx.use_eager_sharding(False):
        model = abstract_toy_net()
    mesh = sharding.make_mesh(2, 4)
    with caplog.at_level(logging.INFO, logger="unires_jax.train.sharding"):
        shardings = sharding.state_shardings(nnx.state(model, nnx.Param), mesh)
    assert shardings["conv1"]["kernel"].spec == P(None, None, None, "fsdp")
    assert shardings["conv2"]["kernel"].spec == P(None, None, None, None)
    assert shardings["norm"]["scale"].spec == P(None)
    assert "conv2/kernel: dim 3 (c_out=3) not divisible by fsdp=4" in caplog.text
    assert jax.tree.structure(shardings) == jax.tree.structure(
        nnx.to_pure_dict(nnx.state(model, nnx.Param))
    )
