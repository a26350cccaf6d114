"""The pipeline chapters' own plumbing, one module per chapter (``vlic.chapters.dpo`` for ``04_dpo_posttrain`` …).

A chapter's first code cell is one call, ``ch = <chapter>.setup(globals())``: it picks the chapter's parameters from
the notebook's namespace (:func:`vlic.chapters.parameters.pick`), moves to the repository root, types the
parameters and builds what the chapter works on, in the order the chapter always did (threads, seeds). Its last
computing cell is one call that writes the chapter's results files (``write_results``). Everything between — the
question, the method, the figures, the caveats — stays in the notebook.

The top layer of the library: it imports the layers below; nothing in the library imports it. This ``__init__``
imports nothing, so a chapter's DVC deps (derived from its imports) are its own module and what that imports.
"""
