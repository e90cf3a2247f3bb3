"""Test equipment shipped with the package: things that stand in for the outside world so
imagegate's own tests, its benchmarks and anyone building against it can run offline.

Nothing here is used by the server itself. `upstreams` holds fake upstream servers, one per
dialect, each checking requests by the rules of its own seed document, never by the
gateway's (see `imagegate.testing.upstreams`).
"""
