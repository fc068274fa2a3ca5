"""arms pipeline: the modelling and prediction pipelines as a template, instantiated once per
arm under its Kedro namespace (``lgbm.train``, ``rf.lulc_map``, ...).

Why: comparing two classifiers on the very same samples and features is one run, not two, and
kedro-viz shows each arm as a group. ``samples`` and ``features_cube`` (the main pipelines'
outputs) are shared inputs; an arm's classifier is ``params:arms.<arm>.classifier``; every
other setting is the main one. Run one arm with ``kedro run --pipelines arms --namespaces rf``.
"""

from kedro.pipeline import Pipeline

from perceptive.params import ARMS
from perceptive.pipelines import modelling, prediction

#: Inputs every arm reads from the main pipelines rather than making its own.
SHARED_INPUTS = {"samples", "features_cube"}
#: Parameters every arm takes from the main configuration.
SHARED_PARAMETERS = (
    "evaluation",
    "early_stopping",
    "probabilities",
    "compiled_model",
    "postprocessing",
)


def create_pipeline(**kwargs) -> Pipeline:
    template = modelling.create_pipeline() + prediction.create_pipeline()
    arms = [
        Pipeline(
            template,
            namespace=arm,
            inputs=SHARED_INPUTS,
            parameters={
                "params:classifier": f"params:arms.{arm}.classifier",
                **{f"params:{name}": f"params:{name}" for name in SHARED_PARAMETERS},
            },
            tags=["arms", f"arm-{arm}"],
        )
        for arm in ARMS
    ]
    return sum(arms, Pipeline([]))
