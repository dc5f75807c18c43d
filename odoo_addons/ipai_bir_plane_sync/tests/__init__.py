from . import test_bir_round_trip  # noqa: F401
