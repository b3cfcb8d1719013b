"""PNG charts of the ETH signals and strategy equity curves (headless, reproducible).

Figures are built with :class:`matplotlib.figure.Figure` and rendered by the Agg canvas,
without pyplot's global state, so the functions are safe in threads and never open a window.
The PNG carries no ``Software`` (matplotlib version) tag, and Agg draws deterministically,
so the same inputs give the same bytes on every call.
"""

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

# matplotlib is imported when a chart is drawn: about 0.9 s that every process loading the
# Dagster definitions (each run and step, the code server) paid otherwise.
if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIZE = (10.0, 4.5)  # inches
DPI = 100
BUY_COLOUR = "tab:green"
SELL_COLOUR = "tab:red"


def _values(xs: Iterable[Any]) -> list[Any]:
    """A plain list from a list, tuple, numpy array or polars Series."""
    to_list = getattr(xs, "to_list", None)
    return list(to_list()) if callable(to_list) else list(xs)


def new_figure() -> "Figure":
    """An empty figure of the charts' :data:`SIZE`, outside pyplot's global state."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - see the imports

    return Figure(figsize=SIZE)


def _png(figure: "Figure") -> bytes:
    """Render a figure to PNG bytes without version metadata."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _finished(figure: "Figure", ax: Any, *, title: str, ylabel: str, log_scale: bool) -> bytes:
    """Title, axis label, grid, legend and date ticks shared by every chart; the PNG."""
    ax.set_title(title)
    ax.set_ylabel(f"{ylabel} (log scale)" if log_scale else ylabel)
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    figure.autofmt_xdate()
    figure.tight_layout()
    return _png(figure)


def price_with_signals(
    dates: Sequence[Any] | Iterable[Any],
    close: Sequence[float] | Iterable[float],
    actions: Sequence[str] | Iterable[str],
    *,
    title: str = "ETH close with buy and sell signals",
    log_scale: bool = False,
) -> bytes:
    """ETH close as a line, buy days as green ``^`` and sell days as red ``v`` markers.

    Args:
        dates: One date per day (``datetime.date``, ``numpy.datetime64`` or a polars Series).
        close: The close of each day.
        actions: ``"buy"``, ``"sell"`` or ``"hodl"`` per day (HODL days get no marker).
        title: The chart title.
        log_scale: Draw the close on a log scale (ETH went from under 1 to 4,000 USD).

    Returns:
        The chart as PNG bytes.

    Raises:
        ValueError: If the three inputs differ in length.
    """
    d, c, a = _values(dates), _values(close), _values(actions)
    if not len(d) == len(c) == len(a):
        raise ValueError("dates, close and actions must have the same length")
    figure = new_figure()
    ax = figure.add_subplot()
    ax.plot(d, c, color="tab:blue", linewidth=1.0, label="ETH close")
    for action, marker, colour in (("buy", "^", BUY_COLOUR), ("sell", "v", SELL_COLOUR)):
        days = [i for i, x in enumerate(a) if x == action]
        ax.scatter([d[i] for i in days], [c[i] for i in days], marker=marker, color=colour,
                   s=24, zorder=3, label=action)
    return _finished(figure, ax, title=title, ylabel="close", log_scale=log_scale)


def equity_curves(
    curves: Mapping[str, tuple[Sequence[Any] | Iterable[Any], Sequence[float] | Iterable[float]]],
    *,
    title: str = "Equity after fees",
) -> bytes:
    """One equity line per strategy (model and baselines), on a log scale.

    Args:
        curves: ``name -> (dates, equity)``; equity starts near 1.0 and must be positive.
        title: The chart title.

    Returns:
        The chart as PNG bytes.

    Raises:
        ValueError: If there is no curve, or a curve's dates and equity differ in length.
    """
    if not curves:
        raise ValueError("no equity curve to draw")
    figure = new_figure()
    ax = figure.add_subplot()
    for name, (dates, equity) in curves.items():
        d, e = _values(dates), _values(equity)
        if len(d) != len(e):
            raise ValueError(f"{name}: dates and equity differ in length")
        ax.plot(d, e, linewidth=1.0, label=name)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    return _finished(figure, ax, title=title, ylabel="equity", log_scale=True)
