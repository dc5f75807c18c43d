from . import test_bir_round_trip, test_event_scope, test_push_lock  # noqa: F401
