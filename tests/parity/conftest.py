import mindspore  # noqa: F401  (before torch / paddle, see DESIGN.md)
