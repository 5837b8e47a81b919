"""The live terminal dashboard (Textual).

Layout (frogmouth-style: https://github.com/Textualize/frogmouth): ``data/`` reads and computes (no Textual),
``widgets/`` display (no I/O), ``app.py`` wires them: a worker polls the sources and posts
a snapshot message up; the app hands the snapshot down to the widgets as an attribute.
"""
