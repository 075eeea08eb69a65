"""Sources: what every job reads, as a stream of records and the state after them.

A source never knows where its records go (that is a sink's business, ``_sinks``)
nor when it runs (the engine's ``Runner``, ``_engine``). Nothing is imported here;
each job imports the source it reads:

* ``_watch``: ``logs.watch()``, the polling loop, yields ``LogBatch``es (new logs
  and the ``WatchState`` after them), over pure decisions beside it:
  ``_watch_state`` (what a state means, its checks, ``begin``), ``_watch_pages``
  (one page: its new logs, the next cursor) and ``_watch_window`` (the lookback
  window for logs that become visible late);
* ``_walks``: the exports' walks of the listings (account-wide, or one per
  integration merged), as batches of whole pages with every walk's cursor;
  ``_range`` bounds an export to ``since``/``until``;
* ``_ties``: the one rule for logs that share an instant at a page boundary,
  used by the watch and the walks alike.
"""
