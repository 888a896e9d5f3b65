"""`aevolve report`: how the agent evolved, as one self-contained HTML page or JSON.

`notes` reads every gate note in one pass, `figures` reads one gate report
(tolerating absent or malformed fields: a note is anyone's input), `changes`
lists the files a commit changed, `history` builds the data model from main's
first-parent history and the notes, `evolvers` sums it per evolver, `model`
holds it and its JSON form, and `page` with `svg` renders it.
"""
