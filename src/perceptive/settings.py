"""Project settings: hooks and configuration loading."""

from perceptive.hooks import InputCheckHooks

HOOKS = (InputCheckHooks(),)

# Parameter files of an environment (e.g. conf/local) merge into base key by key instead of
# replacing whole top-level blocks, so a variant can change one setting of a block.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}
