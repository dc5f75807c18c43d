from . import test_bir_round_trip, test_event_scope  # noqa: F401
