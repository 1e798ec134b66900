"""The training core shared by every training loop (recommender, graph pretraining, group readouts).

One checkpoint and random-state store (:mod:`.checkpoint`), one early-stopping
rule (:mod:`.stopping`), one device resolver (:mod:`.device`) and one seeding
helper (:mod:`.seeding`). Nothing here knows what is being trained.
"""
