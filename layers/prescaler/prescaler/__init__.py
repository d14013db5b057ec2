"""prescaler: a predictive pre-scaler for Amazon SageMaker real-time endpoints.

Pure core: :mod:`prescaler.history` (raw datapoints -> per-minute series), :mod:`prescaler.forecast`
(series -> forecast) and :mod:`prescaler.plan` (forecast + scalable-target state -> decision).
"""

__version__ = "0.1.0"
