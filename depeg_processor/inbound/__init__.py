"""The inbound side: what the web app hands this service, and how it is taken in.

The applications stream read through a consumer group, the pending application hashes it points
at, and the dead letters beside it. Everything here treats the web app's data as untrusted input
(`untrusted`): validated (`application`) before it reaches a transaction, escaped before it
reaches a log line or a dead letter. Nothing here talks to the chain.
"""
