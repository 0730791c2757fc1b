import voiceapi_async
import voiceapi_async.backfill
import voiceapi_async.export

EXPECTED = [
    "APIStatusError",
    "AudioError",
    "AudioExpiredError",
    "AudioResult",
    "AudioStatus",
    "AudioTooLargeError",
    "AuthMode",
    "AuthenticationError",
    "Call",
    "CallStatus",
    "ClientConfig",
    "ClientSettings",
    "ClientStats",
    "ConfigError",
    "DateLike",
    "HangupBy",
    "NotFoundError",
    "OutOfWindowError",
    "Page",
    "PageNumbers",
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
    "TimezoneLike",
    "TransportError",
    "ValidationError",
    "VoiceAPIError",
    "VoiceClient",
    "VoiceConverter",
    "Window",
    "audio_filename",
    "link_expires_at",
    "make_converter",
    "plan_windows",
    "split_window",
    "to_dict",
]


def test_all_is_pinned_and_sorted() -> None:
    """The public surface changes only on purpose: __all__ is pinned here, sorted."""
    assert voiceapi_async.__all__ == EXPECTED
    assert sorted(voiceapi_async.__all__) == voiceapi_async.__all__


def test_every_public_name_exists_and_is_documented() -> None:
    """Each exported name resolves and its object carries a docstring."""
    for name in voiceapi_async.__all__:
        obj = getattr(voiceapi_async, name)
        if name in ("DateLike", "Record", "TimezoneLike"):
            continue  # type aliases: documented where they are defined
        assert obj.__doc__, name


EXPORT = [
    "CALL_COLUMNS",
    "COLUMNS",
    "EXPORT_SCHEMA_VERSION",
    "FORMATS",
    "JSON_COLUMNS",
    "RECORDING_COLUMNS",
    "AudioFile",
    "Csv",
    "ExportFormat",
    "JsonLines",
    "Parquet",
    "RecordWriter",
    "call_row",
    "get_format",
    "is_presigned",
    "json_row",
    "parquet_schema",
    "recording_row",
    "row",
    "sort_records",
    "to_dict",
    "unsigned_url",
]
BACKFILL = [
    "DEFAULT_SAFETY_LAG",
    "FATAL_ERRORS",
    "Backfill",
    "DatasetSettings",
    "IncompleteRebuildError",
    "LockHolder",
    "Manifest",
    "ManifestError",
    "OutputError",
    "OutputLock",
    "OutputLockedError",
    "Problem",
    "Progress",
    "ReportCheck",
    "SettingChange",
    "SettingsMismatchError",
    "Summary",
    "VerifyReport",
    "WindowEntry",
    "WindowResult",
    "WindowState",
    "lookback_start",
    "partition_path",
    "plan",
    "verify",
    "verify_sample",
]


def test_export_and_backfill_surfaces_are_pinned_and_documented() -> None:
    """The export and backfill modules' public names are pinned, sorted, and documented."""
    for module, expected in ((voiceapi_async.export, EXPORT), (voiceapi_async.backfill, BACKFILL)):
        assert module.__all__ == expected
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj):
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
    for base in (
        v.TransportError,
        v.APIStatusError,
        v.ResponseFormatError,
        v.RecordError,
        v.PagingError,
    ):
        assert issubclass(base, v.VoiceAPIError)
