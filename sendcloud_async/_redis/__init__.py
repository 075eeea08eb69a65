"""The Redis parts: one connection's rules, the shared state, and the watch across workers.

Nothing is imported here: redis-py loads only with the module that needs it.

* ``_rules``: the Redis URL and namespace checks, and what a redis-py error means;
* ``_conn``: ``RedisConnection``, the pool and the rules of every Redis call;
* ``_state``: ``RedisState``, the state backend shared by every process of an
  account: its rate gates (``_gate``), token caches (``_tokens``) and export
  ledger (``_ledger``);
* ``_watch``: the watch shared by many workers: leases with fencing tokens, the
  fenced commit (``RedisWatchStore``), the coordinator of one worker;
* ``_tail``: reading the watch's streams as a consumer group (``logs tail``).
"""
