from vad.utils.utils import (
    get_metric_value,
    instantiate_callbacks,
    instantiate_loggers,
    log_hyperparameters,
    task_wrapper,
)

__all__ = ["get_metric_value", "instantiate_callbacks", "instantiate_loggers",
           "log_hyperparameters", "task_wrapper"]
