"""phoihop embedded: the whole bus on one machine (`make run`) and its embedded broker.

Development tooling, not part of the runtime library: no service imports it.
"""
