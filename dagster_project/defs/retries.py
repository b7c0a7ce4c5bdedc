"""When a run retries: transient trouble with an external system, never a verdict on the data.

Assets that talk to the DVC remote or to Triton carry `TRANSIENT_RETRY`. Dagster applies a
retry policy to any exception the asset raises, so the assets sort them first: a network or
filesystem error (OSError, which covers ConnectionError and TimeoutError) propagates and is
retried with backoff; a validation failure, a failed gate or wrong credentials are raised as
`dg.Failure(allow_retries=False)` and fail at once (retrying cannot fix them, and each try of a
training run costs minutes).
"""

import dagster as dg

from genline.versioning import RemoteAuthError, VersioningError

# 3 retries, about 2 s, 4 s, 8 s apart; jitter so writers that failed together do not retry
# together against the same remote.
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError,)  # ConnectionError, TimeoutError


def is_transient(exc: BaseException) -> bool:
    """Whether retrying could help: an OSError anywhere in the cause chain, or a failed push.

    A VersioningError from a push is transient unless it is about credentials: DVC reports a
    failed upload as its own exception after logging the OSError, so the chain does not always
    hold it.
    """
    if isinstance(exc, RemoteAuthError):
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TRANSIENT_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return isinstance(exc, VersioningError) and getattr(exc, "transient", False)


def as_failure(exc: BaseException) -> dg.Failure:
    """A Dagster failure that retries only when `exc` is transient."""
    transient = is_transient(exc)
    return dg.Failure(
        description=f"{'transient, will retry: ' if transient else ''}{exc}",
        allow_retries=transient,
    )
