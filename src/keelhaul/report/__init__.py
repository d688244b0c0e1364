"""The report kit shared by every keelhaul report (load, diagnosis, tune).

``page`` draws the self-contained HTML page (CSP, palette, skeleton, tables, lists);
``charts`` draws inline SVG line charts; ``jsondoc`` holds what every JSON document needs
(timestamps, finite rounded numbers, stable text). A report module keeps only what is its
own: which sections, which series, which fields.
"""
