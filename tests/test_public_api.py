import voiceapi_async

EXPECTED = [
    "APIStatusError",
    "AuthMode",
    "AuthenticationError",
    "Call",
    "CallStatus",
    "ClientConfig",
    "ClientStats",
    "HangupBy",
    "NotFoundError",
    "Page",
    "PagingError",
    "PermissionDeniedError",
    "RateLimitError",
    "Record",
    "RecordError",
    "RecordStream",
    "Recording",
    "Report",
    "RequestTimeoutError",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerError",
    "Shape",
    "TransportError",
    "ValidationError",
    "VoiceAPIError",
    "VoiceClient",
    "VoiceConverter",
    "Window",
    "make_converter",
    "plan_windows",
    "split_window",
]


def test_all_is_pinned_and_sorted() -> None:
    """The public surface changes only on purpose: __all__ is pinned here, sorted."""
    assert voiceapi_async.__all__ == EXPECTED
    assert sorted(voiceapi_async.__all__) == voiceapi_async.__all__


def test_every_public_name_exists_and_is_documented() -> None:
    """Each exported name resolves and its object carries a docstring."""
    for name in voiceapi_async.__all__:
        obj = getattr(voiceapi_async, name)
        if name == "Record":
            continue  # a type alias: documented where it is defined
        assert obj.__doc__, name


def test_error_tree_matches_the_design() -> None:
    """Every error derives from VoiceAPIError in the shape the design draws."""
    v = voiceapi_async
    assert issubclass(v.RequestTimeoutError, v.TransportError)
    for cls in (
        v.AuthenticationError,
        v.PermissionDeniedError,
        v.NotFoundError,
        v.ValidationError,
        v.RateLimitError,
        v.ServerError,
    ):
        assert issubclass(cls, v.APIStatusError)
    for cls in (
        v.TransportError,
        v.APIStatusError,
        v.ResponseFormatError,
        v.RecordError,
        v.PagingError,
    ):
        assert issubclass(cls, v.VoiceAPIError)
