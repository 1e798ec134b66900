"""The item–attribute heterograph: building, price buckets, save/load, statistics.

One concern per module: ``config`` (the ``graph:`` settings), ``normalise``
(attribute values and placeholders), ``prices`` (parsing and buckets),
``vocab`` (which values become nodes; item edges), ``build`` (metadata ->
:class:`~esrgraph.graph.edges.HeteroEdges` -> DGL), ``stats`` (statistics and
their printout), ``io`` (``graph.bin``, ``graph.json``, ``edges.npz``),
``stage`` (the ``graph`` stage of a run). Only ``build.to_dgl`` and the DGL
parts of ``io`` import DGL, and only when called.
"""
