"""Intended differences between Strata and RediSearch 2.10.5: case -> reason.

Every entry names one case of streams.py and says why the difference is
intended (issue 21 or docs/design/search.md). A difference not listed here
fails the differential test.
"""

ALLOWED = {}
