"""The review sheets (docs/sheets.md): daily, weekly and monthly figures, notes, improvement actions.

``numbers`` builds each sheet from the KPI engine, ``notes`` keeps the notes (with their
audit log) and the actions, ``workbook`` writes a sheet as an Excel workbook.
"""
