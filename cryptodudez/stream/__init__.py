"""The CryptoMood stream: a private NATS JetStream broker, a replayer and a consumer.

``broker`` starts and stops ``nats-server -js`` on loopback and declares the stream;
``replay`` publishes JSON lines (files or the shipped zip) in file order, one message a line,
routed to coin-partitioned subjects; ``consumer`` validates pulled messages with the lake's
own engine and keeps per-coin windowed aggregates in a DuckDB state store, from which the
correlation table is computed with the batch path's functions. See ``docs/stream.md``.
"""
