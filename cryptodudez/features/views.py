"""The feature views, declared in code: one home for what each feature table is.

A view names its entity, its event-time and availability-time columns, how long a value
stays valid (TTL) and its value columns. The point-in-time join reads these declarations;
the Dagster assets, the docs and the online store's freshness check all list them from here.
"""

from dataclasses import dataclass
from datetime import timedelta

from cryptodudez.features import markets, tweets


@dataclass(frozen=True)
class FeatureView:
    """A declared feature view.

    Attributes:
        name: the view (and its table under ``features/``).
        entity: what a row describes (``elonmusk``, ``symbol``: a ticker within its asset
            class).
        keys: the entity key columns (empty: one entity).
        event_time: the column of the instant a row's values describe.
        available_at: the column of the instant the platform could first know them.
        ttl: how old (by event time) a value may be at a decision and still be used.
        columns: the value columns.
        description: what the view holds.
        online_required: whether the online row is stale without it (False for values
            that are only known once a later delivery brings them).
    """

    name: str
    entity: str
    keys: tuple[str, ...]
    event_time: str
    available_at: str
    ttl: timedelta
    columns: tuple[str, ...]
    description: str
    online_required: bool = True


TWEET_ACTIVITY = FeatureView(
    name="tweet_activity", entity="elonmusk", keys=(), event_time="event_time",
    available_at="available_at", ttl=timedelta(days=2), columns=tweets.ACTIVITY,
    description="Tweets per UTC day and tweets mentioning each brief term (word "
                "boundaries); zero on days without tweets; known when the day ends.",
)
TWEET_ENGAGEMENT = FeatureView(
    name="tweet_engagement", entity="elonmusk", keys=(), event_time="event_time",
    available_at="engagement_available_at", ttl=timedelta(days=2), columns=tweets.ENGAGEMENT,
    description="Likes, retweets and replies per UTC day and per tweet. Snapshots scraped "
                "with the file, so known only from the delivery that brought them.",
    online_required=False,
)
TWEET_TEXT = FeatureView(
    name="tweet_text", entity="elonmusk", keys=(), event_time="event_time",
    available_at="available_at", ttl=timedelta(days=2), columns=(),  # set by the text module
    description="VADER sentiment and a hashed bag of words of the cleaned tweets per UTC "
                "day; known when the day ends.",
)
MARKET_DAILY = FeatureView(
    name="market_daily", entity="symbol", keys=markets.KEY, event_time="event_time",
    available_at="available_at", ttl=timedelta(days=5), columns=markets.MARKET_FEATURES,
    description="Per coin, stock, ETF and equal-weight index, keyed by asset class and "
                "symbol (a stock with a coin's ticker is its own series): daily log return, "
                "20-bar volatility, momentum and volume z-score, 60-bar correlation and beta "
                "to the ETH coin. "
                "TTL 5 days covers US weekends and holidays; the age of the bar is attached.",
)
VIEWS = (TWEET_ACTIVITY, TWEET_ENGAGEMENT, TWEET_TEXT, MARKET_DAILY)
