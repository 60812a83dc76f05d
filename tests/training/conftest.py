import pytest
from training_helpers import causal_batches, reference_config, reference_data, tiny_causal_lm

from kerasllm.training import Trainer

# The scripts are run as subprocesses by the tests (multi-worker, logical devices); importing
# them for doctests would configure devices in the test process after TensorFlow started.
collect_ignore = ["scripts"]


@pytest.fixture
def causal_data():
    return causal_batches()


@pytest.fixture(scope="session")
def reference_weights(tmp_path_factory):
    """Weights after the uninterrupted reference run (`training_helpers.reference_config`)."""
    model_dir = tmp_path_factory.mktemp("reference")
    trainer = Trainer(tiny_causal_lm, "causal_lm", reference_config(model_dir), "one_device")
    trainer.fit(reference_data())
    return [v.numpy() for v in trainer.model.weights]
