"""The neutral model, the backend interfaces and their implementations.

Nothing here imports ``gateway``: front ends translate standards into these types, backends
do the work. Implementations are found through the ``xtreemgate.backends`` entry points.
"""
