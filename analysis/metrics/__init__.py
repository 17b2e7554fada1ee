"""The evaluation measures, one module per measure, and `score_pair`, which scores a
reference / decoded pair with every measure that applies.

- `align`: delay alignment (a codec's constant delay is not distortion);
- `quality`: mel distance, SI-SDR, STOI, PESQ (speech);
- `visqol`: ViSQOL v3 audio mode at 48 kHz;
- `dnsmos`: DNSMOS P.835 SIG / BAK / OVRL (speech, non-intrusive);
- `f0`: a neural F0 tracker (CREPE or FCPE): pitch kept, F0 RMSE in cents, voicing agreement;
- `bands`: energy per frequency band against the reference (where a codec loses formants);
- `rates`: token rate and bitrate of a codec setting;
- `score`: `score_pair`, the one entry point of the app, `analysis evaluate` and `bench.gates`;
- `judge`, `judge_features`, `judge_augment`: the audio judge, an instrument recogniser fitted on
  real notes (never on codec output) that says what a decoded clip sounds like;
- `judge_grid`: the timbre-transfer grid judged by ear; `judge_view`: its verdicts as text.

Training's own cheap checks (SI-SDR, mel distance, the autocorrelation pitch) stay in
`codec.metrics`.
"""

from analysis.metrics.align import Alignment, align_delay, as_mono
from analysis.metrics.quality import QualityMetrics, quality_metrics
from analysis.metrics.rates import RateInfo, codec_rates
from analysis.metrics.score import COLUMNS, ClipScores, score_pair
from analysis.metrics.scored import NotScored

__all__ = [
    "COLUMNS",
    "Alignment",
    "ClipScores",
    "NotScored",
    "QualityMetrics",
    "RateInfo",
    "align_delay",
    "as_mono",
    "codec_rates",
    "quality_metrics",
    "score_pair",
]
