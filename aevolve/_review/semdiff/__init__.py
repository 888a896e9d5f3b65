"""The semantic diff's parts, one module per job; `aevolve._review.diff.semantic_diff` puts them together.

- `result`: the data a diff is made of (`SemanticDiff` and the change of each layer);
- `sources`: the two sides (a commit's tree, the index, the working tree) and what differs between them;
- `fields`: mappings compared field by field;
- `text`, `structured`, `memory`, `skills`: one differ per kind of file.
"""
