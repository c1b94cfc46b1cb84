"""phoihop testkit: the pytest plugin, test helpers and whole-bus evaluation.

A development dependency only (the root `dev` group): no service imports it.
"""
