"""The remote as a first-class place: `aevolve sync` (layer 7, beside `_hooks` and `_review`).

`fetch` brings the remote's main, evolution branches, notes and observations
into remote-tracking copies (never the local refs); `notes_merge` and
`observations_merge` merge those copies into the local refs as a union,
building merge commits from objects and moving each ref by compare-and-swap;
`sync` puts it together and fast-forwards main when nothing would be lost.
"""
