"""Band merge: the recording stays, the model's band is added above the cutoff.

The surviving band is the recording itself: below the cutoff the engine outputs the input
spectrum untouched. Above it the model's band is faded in over a few bins and *added* to
what the input holds there, never painted over it; where that is the signal itself,
weakened by the cut's skirt, it is lifted towards the model's level first (see `merge`).
Where the cutoff is: `cutoff.py`.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from .stft import periodic_hann

# Power below this is digital silence and says nothing about the cutoff.
SILENCE_DB = -120.0
# Bins over which the merge compares the input's power with the model's (9 bins = 211 Hz
# at 48 kHz): wide enough that one bin's random level does not decide, narrow enough to
# follow the hiss's tilt and the model's envelope.
MERGE_BAND_BINS = 9
# dB per octave the added band may fall at most and must fall at least (see
# `added_band_limit`): music above 1 kHz falls at least 6 dB/octave; steeper than 24 the
# octave under the cut is a filter skirt, not the recording.
LIMIT_SLOPE_DB = (-24.0, -6.0)
# Under this the added band may stay as loud as the top of the band under the cut: a
# recording's long-term spectrum does not fall below 1 kHz (bass, voices and instruments'
# fundamentals), and under a low cut the octave under it is half skirt. On the development
# set (true cutoffs) it took the default model's LSD above the cut from 1.004 to 0.988 with
# the hiss cut (150 Hz 1.457 -> 1.385, 600 Hz 1.162 -> 1.122) and from 0.936 to 0.929 with
# it kept, its share of items worse than the input unchanged (9.2 %); level up to 2 kHz
# took that share to 12.2 %.
LIMIT_LEVEL_HZ = 1000.0
# Where the input keeps its own hiss above the cut, the model's band goes in this far under
# the level the model (and its `BandLevel`) gives it: over a hiss that is the recording's,
# a guess too loud is worse than the input. Development sets, 2.2, true cutoff, hiss kept
# (LSD above, share worse than the input; music 196 items / speech of the training part 54
# items, STOI of the speech, the input's 0.842): 0 dB 0.941 (9.2 %) / 0.683 (53.7 %), STOI
# 0.842; -3 dB 0.945 (6.1 %) / 0.666 (35.2 %), 0.844; -4.5 dB 0.951 (4.6 %) / 0.659 (27.8 %),
# 0.845; -6 dB 0.958 (3.1 %) / 0.655 (20.4 %), 0.845. Beside the kept-hiss gate and the
# reel's lift (2.3, twenty-seventh session; music 196 / speech 54 items, true cutoff / auto),
# 0 / -3 / -6 dB: music 0.9145 (7 %) / 0.9185 (5 %) / 0.9331 (2 %), auto 0.9436 / 0.9484 /
# 0.9617; speech 0.6695 (19 %, STOI 0.8578) / 0.6620 (9 %, 0.8582) / 0.6619 (4 %, 0.8587),
# auto 0.6668 / 0.6640 / 0.6677 (STOI 0.8630 / 0.8638 / 0.8637): still the middle way.
KEPT_BAND_DB = -3.0
# How `merge` lifts the residue of the signal above the cutoff, per row: not at all (no
# floor read yet), all of it (the floor went with the cut), or only what stands above the
# floor the input keeps (its own hiss stays as it is).
LIFT_NONE, LIFT_ALL, LIFT_OVER_FLOOR = 0, 1, 2
# A residue further than this under the model's level is not taken for the signal (and
# not raised at all): the depth of PCM 16.
LIFT_MAX_DB = 96.0
# What the print holds is all that went through the cut; a click, a splice or a dropout
# in the transfer after it did not, and where the skirt has taken the signal 40-100 dB
# down it stands far over the residue. Summed into the reel's lift it ruled it for the rest
# of the reel, and lifted by the reel's gain it came out several times its height (real
# speech cut with its hiss, one click of 0.3 at 2 s: Butterworth-8 at 3 kHz, the band 31 dB
# down from there on and the click 3.3x; at 600 Hz 18 dB and 4.9x; the slit at 3 kHz 4.5 dB
# and 3.9x; `tests/test_stream.py`). Two guards, where the hiss went with the cut (`LIFT_ALL`):
# - a run of at most STRAY_COLUMN_RUN of a frame's STFT columns (64 ms; a click lights 4)
#   in which some bin that lifts stands more than STRAY_COLUMN_DB over what the reel's cut
#   leaves of the model's band in this frame (ΣR / ΣW of the reel so far times the frame's
#   W, per bin, W without the frame's STRAY_COLUMN_RUN loudest columns: a model that follows
#   the band under the cut raises its own band where a click is, and over the frame's mean
#   that hid the click once the reel's sums held its programme: real speech cut by the slit at
#   3 kHz, a click of 0.3 at 2 / 4 / 6 / 8 / 10 s raised 1.0 / 1.34 / 1.02 / 1.43 / 1.43x, now
#   1.0 / 1.0 / 1.01 / 1.0 / 1.0x as the reel plays and 1.0 / 1.0 / 1.01 / 1.0 / 1.43x with its
#   sums read ahead, `stream.LIFT_PRIME_SECONDS`, 1.0x at 10 s too with the click's guard below;
#   the noise fill, measured), the window's
#   leakage from under the cut taken off, holds such an event:
#   those columns are left out of the frame's sums and not lifted (they stay as the input
#   holds them). A sustained sound is the recording's;
# - a frame whose residue in a bin stands more than STRAY_RESIDUE_DB over what the reel's
#   cut leaves of the model's band in it is not added to the reel's sums there.
# The frame guard alone took the speech development set's LSD above the true cutoff with
# the hiss cut from 0.9154 to 0.8750 (its STOI 0.9150 -> 0.9146): frames standing that far
# over the reel's ratio had held its gain down. The column guard also catches some of
# speech's consonant onsets (the model's band lacks them), which then stay as the cut left
# them: STOI with it at 40 / 45 / 60 dB 0.9126 / 0.9135 / 0.9142 (the input's 0.9116), the LSD
# unchanged; a click of 0.05 on the slit reel above is raised 1.7 / 1.7 / 37x (one of 0.3
# 1.0 / 1.3 / 2.2x).
STRAY_RESIDUE_DB = 20.0
STRAY_COLUMN_DB = 45.0
STRAY_COLUMN_RUN = 6
# A column the first guard flags is cleared again where the event went through the cut: an event
# made after it (a click, a splice) stands the higher over what the cut leaves the deeper the
# skirt is there (its own spectrum is smooth, the residue's follows the cut), a consonant the
# model's band lacks stands about as high over shallow and deep bins. Over the bins where the
# column stands STRAY_FOOTPRINT_OVER times (power) over what the cut leaves, at least
# STRAY_FOOTPRINT of the bins that lift (a tone's few bins give no slope: it stays flagged), the
# least-squares slope of the event's excess against the skirt's depth (both in dB; the depth
# from the reel's sums, ΣW / ΣR) must reach STRAY_SLOPE. Real speech cut by the slit at 3 kHz
# (`tests/test_stream.py`): a consonant left unlifted, up to 13 dB under the reference, now
# within 0.4 dB; the clicks and splices of `training.clickcheck` flagged as before. Development
# sets (fifty-second session), hiss cut, true / auto: speech 0.7219 / 0.6980 -> 0.7215 / 0.6977,
# STOI 0.9159 / 0.9165 -> 0.9164 / 0.9168; music etc. 0.7844 / 0.8143 -> 0.7842 / 0.8143. Without
# the footprint (every flagged column read so) the speech gained more (0.7208 / 0.6967, STOI
# 0.9165 / 0.9168) but a tone's onset after the cut was raised by the reel's gain, 84 dB
# (`tests/test_band.py`). With the guard at 30 dB as well, which catches a splice after a slit
# cut that 45 dB lets through (`models/default.md`, "The band beside a stray event"): 0.7255 /
# 0.7021, STOI 0.9132 / 0.9143 with the footprint, 0.7213 / 0.6971, 0.9166 / 0.9172 without it.
STRAY_SLOPE, STRAY_FOOTPRINT, STRAY_FOOTPRINT_OVER = 0.5, 0.25, 10.0
# Under the column guard's 45 dB an event made after the cut is still raised by the reel's
# gain, up to `LIFT_MAX_DB` in the skirt's deep bins: a click of 0.05 after the slit at 3 kHz
# (`training.clickcheck`'s small click) stood 43 dB over what the cut leaves once the lift's
# sums were read ahead over the reel's programme, and came out 51x its height at 2 s (2.6-53x at
# 1-10 s; as the reel plays, the early sums held the bound lower: 1.0-2.6x). A click's spectrum
# is flat, the residue's follows the skirt: its excess grows with the depth at a slope near 1
# (1.0 over 92 % of the bins that lift, measured), a consonant's or a splice's less (the
# programme's up to 0.70, a splice 0.61: fifty-third session). The click's guard marks a column
# that stands STRAY_CLICK_DB over what the cut leaves where that slope reaches
# STRAY_CLICK_SLOPE over at least STRAY_CLICK_SHARE of the bins that lift. The small click at
# 2 / 4 / 6 / 8 / 10 s: 51.1 / 10.5 / 6.0 / 14.3 / 2.6x -> 1.44 / 1.01 / 1.01 / 1.00 / 1.44x; the
# click of 0.3 1.0-1.4x -> 1.0x; the splice as before but at 8 s, 3.3 -> 1.0x; the other cuts,
# and every cut over a kept hiss, unchanged (the default model, measured). Development sets, hiss
# cut, true / auto: every speech item as before; of 177 music etc. items one moved, with auto
# (an effects clip whose bright transient read 0.85-0.9: LSD above the cut 0.0985 -> 0.1132 at a
# slope of 0.85, 0.1001 at 0.9, as before at 0.95).
STRAY_CLICK_DB, STRAY_CLICK_SLOPE, STRAY_CLICK_SHARE = 30.0, 0.9, 0.5
# Over the floor the input keeps, the reel's residue per bin is read without each frame's
# this many loudest inner columns: a click on the print lights up 4 of a frame's 43, and
# must not make a hiss-only bin look like a residue (where the lift is, the model adds
# nothing; `tests/test_band.py`: one click in a frame of hiss -> 2.1 dB with none left
# out, under 0.1 dB with one). Development sets as for the headroom below (then over the
# model's mean + 6 dB), none / 1 / 2 / 4 left out: music 0.9181 / 0.9182 / 0.9185 / 0.9191
# true, speech STOI 0.8596 / 0.8589 / 0.8582 / 0.8566 (a consonant's few columns are left
# out too).
LOUDEST_COLUMNS_LEFT_OUT = 2
# Over the floor the input keeps, a lifted column stays at most this far over the model's
# band's loudest column in the frame (per bin, over `MERGE_BAND_BINS`): a click on the
# print after the cut is not raised past it, a sibilant the residue holds and the model's
# band (following the band under the cut) lacks is raised as far as the frame's loudest
# moment. Development sets (2.3, hiss kept; music 196 / speech 54 items: LSD above the cut,
# share worse than the input, STOI of the speech; the input's 0.8527), true cutoff / auto:
# over the model's loudest column 0 dB: music 0.9180 (4.6 %) / 0.9478 (5.1 %), speech
# 0.6615 (7 %, 0.8591) / 0.6635 (4 %, 0.8645); 3 dB: 0.9168 / 0.9470, 0.6629 (9 %, 0.8599) /
# 0.6643 (6 %, 0.8651); 6 dB: 0.9163 / 0.9467, 0.6651 (9 %, 0.8606) / 0.6656 (6 %, 0.8654).
# Over the model's mean level in the frame instead (twenty-seventh session), 6 dB: 0.9185
# (4.6 %) / 0.9484 (5.1 %), 0.6620 (9 %, 0.8582) / 0.6640 (4 %, 0.8638); measured before the
# loudest columns were left out of the reel's residue (`LOUDEST_COLUMNS_LEFT_OUT`): at
# most the model's level in each column, speech 0.6611 (6 %, STOI 0.8582) / 0.6646 (4 %,
# 0.8638); mean + 3 dB 0.9204 (5 %) / 0.9498 (5 %), 0.6616 (6 %, 0.8586) / 0.6642 (4 %,
# 0.8635); mean + 12 dB 0.9160 (4 %) / 0.9462 (4 %), 0.6668 (17 %, 0.8610) / 0.6669 (6 %,
# 0.8657); no bound 0.6742 (19 %, 0.8632) / 0.6710 (6 %, 0.8669). Before the reel's gain:
# 0.9259 (5 %) / 0.9536 (5 %), 0.6633 (7 %, 0.8565) / 0.6650 (4 %, 0.8626). 0 dB is as good
# or better than the mean + 6 dB in every figure; more headroom trades the speech's LSD
# for its STOI.
# Forty-fifth session, with the added band's course below (`KEPT_COURSE_SHARE`): 0 dB cut
# the residue's sibilants wherever the frame's model band is quiet, and its level then
# stepped from frame to frame; speech development set (54 items), true cutoff / auto, LSD
# above the cut (share worse than the input), STOI (the input's 0.8527): 0 dB 0.659 (7 %) /
# 0.665 (4 %), 0.8642 / 0.8681; 12 dB 0.659 (6 %) / 0.664 (4 %), 0.8660 / 0.8690; 20 dB 0.659
# / 0.664, 0.8664 / 0.8691. A Butterworth-2 at 1.6 kHz: 0.9748 at 0 dB, 0.9819 at 12 dB (input
# 0.9816).
KEPT_LIFT_HEADROOM_DB = 12.0
# Over the floor the input keeps, a lifted column is raised by its share over this many
# times the floor (a power ratio), not over the floor itself: a band of 9 bins of white
# noise stands over its mean by 10 % in 35 % of the engine's STFT columns, by 50 % in 13 %,
# twice in 3 %, and a reel's gain of 10-20 dB raised those chance swells into a random
# envelope the reference does not have (STOI weighs it; `tests/test_band.py`, a pause in
# the programme: 15.6-17.2 dB over the hiss at 1x, 2.1-6.8 dB at 2x). Development sets
# (2.3, hiss kept, true cutoff / auto; LSD above the cut, share worse than the input, STOI
# of the speech, the input's 0.8527): 1x music 0.9180
# (4.6 %) / 0.9478 (5.1 %), speech 0.6615 (7 %, 0.8591) / 0.6635 (4 %, 0.8645); 1.5x 0.9201
# / 0.9494, 0.6591 (6 %, 0.8605) / 0.6629 (4 %, 0.8655); 2x 0.9219 (4.6 %) / 0.9507 (5.1 %),
# 0.6593 (6 %, 0.8611) / 0.6634 (4 %, 0.8660): the speech gains in LSD and STOI, the music
# loses a little LSD (its residue near the floor is programme), no share worse than the
# input rises. On speech cut at 2 and 3 kHz, STOI in the third-octave band at 4 kHz
# against the input: -0.057 at 1x, -0.047 at 2x.
KEPT_FLOOR_MARGIN = 2.0
# Over the floor the input keeps, where the model's band is added (a bin the lift does not
# raise: its residue stands under the floor on average, or already at the model's level), its
# course over the frame's columns follows the residue's, not its own: the residue is the
# recording's band there, often only a few dB over the hiss, yet it holds the speech's
# envelope (a slit at 215 Hz, a kept hiss at -74 dBFS: STOI in the band at 1.9 kHz 0.83 in the
# input, 0.43 with the model's band added over it). Each column's added band is scaled in
# power by (r + s r̄) / ((1 + s) r̄) · w̄ / w: r the residue over `KEPT_FLOOR_MARGIN` times
# the floor (as the lift reads it; a column with its two neighbours), w the model's band,
# r̄ and w̄ their means over the frame's inner columns, s = KEPT_COURSE_SHARE; at most
# KEPT_COURSE_MAX_DB; only where r̄ is at least KEPT_COURSE_MIN_RESIDUE of the floor and the
# residue shows in at least KEPT_COURSE_COLUMNS of the inner columns (else there is no
# residue to follow: a click on the print lights up 4 of a frame's 43 columns, and a band of
# hiss stands over twice its mean in 3 % of them; followed, a click drew the frame's added
# band into its own columns, `tests/test_band.py`). The frame's added power stays about the
# model's; its moments are the residue's. Speech development set (2.3, hiss kept, 0 dB
# headroom), true cutoff / auto: STOI 0.8610 / 0.8656 -> 0.8642 / 0.8681, items under the
# input's 19 / 13 -> 17 / 8, LSD above the cut 0.659 / 0.663 -> 0.660 / 0.665 (before the
# column share). Tried: s = 0.3 0.8638 / 0.8679; without the model's own course taken out
# (w̄ / w) 0.8637 / 0.8677; the power ratio raised to 1.5 (with 12 dB headroom) 0.8648 /
# 0.8675 against 0.8660 / 0.8690. With 12 dB headroom, the residue showing in at least 10 /
# 15 / 20 / 25 / 40 % of the columns: 0.8661 / 0.8692, 0.8658 / 0.8691, 0.8652 / 0.8687,
# 0.8647 / 0.8683, 0.8635 / 0.8672 (none: 0.8660 / 0.8690); at 15 % the test's frame of hiss
# with one click still moved the added band by 0.3 dB (4 columns of click and the hiss's
# chance swells), at 25 % not at all.
KEPT_COURSE_SHARE, KEPT_COURSE_MAX_DB, KEPT_COURSE_MIN_RESIDUE, KEPT_COURSE_COLUMNS = 0.1, 20.0, 0.05, 0.25
# And over a kept hiss the added band follows, in every bin, the residue's course pooled over
# its octave above the cut (`_pooled_course`; octaves of KEPT_POOLED_OCTAVES from the cut up):
# summed over the octave, the residue over the floor shows the programme's moments where each
# bin's alone is lost in the hiss's chance swells (a slit's sidelobes, a skirt's top a few dB
# over the hiss). Each column's added band is scaled in power by ((p + c p̄) / ((1 + c) p̄))^e:
# p the pooled residue (a column with its two neighbours), p̄ its mean over the frame's inner
# columns, c = KEPT_POOLED_SOFT; under the same conditions as the residue's course above (at
# least `KEPT_COURSE_MIN_RESIDUE` of the floor, showing in `KEPT_COURSE_COLUMNS` of the
# columns, at most `KEPT_COURSE_MAX_DB`). In the first octave e = KEPT_POOLED_EXPONENT. An
# octave above it follows its own residue fully (e = KEPT_POOLED_UPPER_EXPONENT) where that
# residue's course stands out of the hiss's chance swells: the interquartile range of the
# pooled power over the inner columns (three-column means) over KEPT_POOLED_CHANCE / sqrt(bins
# in the octave) times its median (white noise through the engine's STFT, 16-256 bins, 20
# draws: 1.1-1.4 / sqrt(bins) in the median, at most 2.2; quartiles, so that a click's few
# columns do not pass: `tests/test_band.py`); elsewhere it follows the octave under it. The
# speech's envelope is not one course: a slit cut at 215 Hz leaves the consonants' sidelobes
# at 2-4 kHz some 40 dB down, over a hiss at -74 dBFS; the voicing's course pooled over the two
# octaves above the cut, given to the band there, cost 0.075 in STOI (third-octave bands at
# 1.9-3.8 kHz: envelope correlation 0.53-0.83 in the input, 0.24-0.35 restored). The lifted
# residue is left as it is. Development sets (2.3, hiss kept), true cutoff / auto, LSD above the cut (items worse
# than the input), STOI of the speech (the input's 0.8527): two octaves pooled for every bin
# (the forty-seventh session) -> octaves: speech 0.6598 (3) / 0.6637 (2), 0.8674 / 0.8698 ->
# 0.6584 (3) / 0.6636 (2), 0.8698 / 0.8738, items under the input's STOI 8 / 10 -> 7 / 7; music
# etc. 0.9133 (7) / 0.9452 (7) -> 0.9131 (7) / 0.9449 (6). The test at 2.7 / 3.5 x: 0.8699 /
# 0.8731, 0.8697 / 0.8727; at 1.5 x the click in the test's frame of hiss passed it. Tried with
# the coefficient of variation for the test (over 2 / sqrt(bins): 0.8702 / 0.8727, but a click
# passed it), speech STOI; music LSD: every octave followed (e = 0.5) without the test and the
# octave under (an octave of hiss alone passes the residue's tests where the floor reads low)
# 0.8654 / 0.8688; the test on the first octave too 0.8700 / 0.8725, with e = 0.5 above it
# 0.8685 / 0.8716, e = 1 in all 0.8686 / 0.8714; the first band two octaves wide 0.8688 /
# 0.8712, with the model's own course taken out above it 0.8669 / 0.8710; half octaves 0.8711
# / 0.8738, the test at 1.5 / 3 x 0.8709 / 0.8737, 0.8704 / 0.8739; third octaves 0.8721 /
# 0.8746 but music 0.9143 / 0.9459, without the octave under where the test fails 0.8665 /
# 0.8695; the course read against the reel's running mean instead of the frame's (two
# octaves) 0.8678 / 0.8699.
KEPT_POOLED_OCTAVES, KEPT_POOLED_SOFT, KEPT_POOLED_EXPONENT = 1.0, 0.3, 0.5
KEPT_POOLED_UPPER_EXPONENT, KEPT_POOLED_CHANCE = 1.0, 2.0
# Over a kept hiss, where the residue shows no course of its own in a bin (`_residue_course`
# leaves it be), the added band keeps its own course over the frame's columns only to this power
# (1: as the model gives it; 0: flat, the frame's mean): each column's added power is scaled by
# (w̄ / w)^(1 - KEPT_MODEL_COURSE), w the model's band (over `MERGE_BAND_BINS`, from the cut
# up), w̄ its mean over the frame's inner columns, within `KEPT_COURSE_MAX_DB`. The model's
# course follows the band under the cut; above a low cut, or over a voice it never heard, that
# is not the band's: the voicing, loud under a 300 Hz cut, drew the added band up to 17 dB over
# the reference at 1.5 kHz in a voiced sound whose formants there are quiet, where a steady hiss
# leaves STOI its envelope (a held-out voice, Butterworth-8 at 300 Hz: STOI 0.449 in the input,
# 0.357 restored, 0.379 with the course halved: the frame's level stays the model's). The pooled
# and per-bin residue courses still apply on top. Development sets (2.3, hiss kept), true cutoff
# / auto, LSD above the cut (items worse than the input), STOI of the speech, 1 (before) -> 0.5:
# held-out voices (`realset --held-out-speech`, 108 items, the input's STOI 0.8398) 0.8458 (8) /
# 0.8551 (3), STOI 0.8395 / 0.8404 -> 0.8444 (6) / 0.8541 (3), 0.8433 / 0.8440 (true cutoff at
# 150 / 300 Hz 0.435 / 0.595 -> 0.445 / 0.606, the input's 0.448 / 0.602); the training voices'
# speech (54 items, the input's 0.8527) 0.6584 (3) / 0.6636 (2), 0.8698 / 0.8738 -> 0.6542 (2) /
# 0.6609 (2), 0.8718 / 0.8757; their speech under gentle slopes (54) 0.6466 (4) / 0.6515 (2),
# 0.8924 / 0.8942 -> 0.6440 (3) / 0.6501 (2), 0.8938 / 0.8958; music etc. (196) 0.9131 (7) /
# 0.9449 (6) -> 0.9120 (8) / 0.9443 (7) (two more over the input's line by a hair, 0.603 ->
# 0.604 and 0.588 -> 0.595, one fewer); music etc. under gentle slopes (196) 0.8901 (11) /
# 0.9367 (14) -> 0.8901 (11) / 0.9376 (15). A first form (in every bin, the residue's course or
# not, the model's band read with the bins under the cut), STOI of the held-out voices / the
# training voices, true cutoff: course kept at 0.7 0.8421 / 0.8713, 0.5 0.8434 / 0.8715, 0.3
# 0.8443 / 0.8707, 0 (flat) 0.8444 / 0.8667.
KEPT_MODEL_COURSE = 0.5
# The reel's lift gain (where the hiss went with the cut) is smoothed over this many
# octaves around each bin, in dB: the filter's loss is smooth in frequency, the residue's
# own partials and resonances are not, and a gain per bin would flatten them into the
# model's smoother band. On the development set (2.2, true cutoff, hiss cut) the LSD above:
# per bin 0.948, 1/5 octave 0.931, 1/3 octave 0.927, 1/2 octave 0.929; but over a steady
# hiss cut at 3 kHz (`tests/test_stream.py`, no fixed notches) 1/3 octave left a 3.7 dB
# notch in the band (per bin 0.7 dB, 1/5 octave 1.8 dB).
LIFT_SMOOTH_OCTAVES = 0.2
# Where the hiss went with the cut, the reel's lift gain follows the curve of `skirt.py`
# whose shape fits the model's (ΣW / ΣR) best, at the level the cutoff fixes (-3 dB there),
# as deep as it has lost this many dB; further in, and wherever the curve and the model
# part by more than `SKIRT_HOLD_DB`, the model's smoothed gain bounds it. On the
# development set (2.2, true cutoff) the LSD above the cut with the hiss cut: 0.931 without
# the curve, 0.913 with it (slit 0.644 -> 0.616, Butterworth-2 0.854 -> 0.819), with it kept
# 0.938 -> 0.939; the curve unbounded (depth 20 dB): 0.917 and 0.981 (a hiss added after
# the cut and read as gone with it is raised by the curve), depth 40 dB: 0.923.
SKIRT_DEPTH_DB = 20.0
SKIRT_HOLD_DB = 6.0
# Where the curve fits the model's word closely (the spread of ln(ΣW / ΣR) + ln |H|^2 about
# its mean at most SKIRT_TRUST_COST, ln power squared: about 3 dB), the loss is the curve's:
# it is fitted again over the bins the model finds down to SKIRT_TRUSTED_DEPTH_DB and
# followed as deep (still held within SKIRT_HOLD_DB of the model's). A hiss added after the
# cut and read as gone with it fits no curve (development set, 2.2, true cutoff: spread
# median 4.05 over those reels against 0.11 where the hiss went with the cut; 2 of 55 such
# reels under 0.5, 162 of 187 of the others). LSD above the cut, hiss cut / kept: 0.913 /
# 0.939 with no trust, 0.899 / 0.941 trusted as here (slit 0.616 -> 0.557), 0.895 / 0.944
# trusting a spread of 1.0; trusted depth 60 dB 0.895 / 0.941, but a model's word that
# levels off 55 dB down (its own range) then reads as a gentler curve; the same depth for
# every reel, no trust: 40 dB 0.905 / 0.981, 50 dB 0.893 / 0.990.
SKIRT_TRUST_COST = 0.5
SKIRT_TRUSTED_DEPTH_DB = 50.0
# The curve passes through -3 dB at the cutoff, but a cutoff is known only within a few per
# cent (auto reads it within 0.95-1.25x; a user's is a nominal figure), and the curve whose
# shape fits best swings with a small shift of that anchor: on the development set (2.3,
# hiss cut) the cutoff given 7 % low or high took the LSD above it from 0.837 to 0.852 /
# 0.860 (at 6 kHz 0.633 -> 0.627 / 0.725, at 8 kHz 0.575 -> 0.628 / 0.592). So the curve is
# fitted at each of these anchors (times the cutoff), each followed as above, and the lift's
# gain per bin is their mean in dB. Development set, hiss cut, true / auto: one anchor
# 0.8374 / 0.8696, three (0.93-1.075x) 0.8333 / 0.8629, these five 0.8328 / 0.8618.
SKIRT_ANCHORS = (0.87, 0.93, 1.0, 1.075, 1.15)
# Where the band holds the print's lost hiss (`hold_at_hiss`: a reel that swings like speech
# and lost its hiss with the cut), the model's band from COURSE_FROM_HZ up follows its own
# course over the frame's columns COURSE_FACTOR times as steeply (`steepen_course`: each
# COURSE_OCTAVES of it, its level per column in dB about the frame's mean): the model,
# trained mostly on music, gives speech's highs too flat a course (sibilants against their
# pauses). Development sets (2.3, LSD above the cut with the hiss cut, true / auto): speech
# 0.9456 / 0.9260 -> 0.9192 / 0.9132; the music etc. set's speech 0.8658 / 0.8639 -> 0.8414 /
# 0.8490, its effects 0.9201 / 0.9265 -> 0.9202 / 0.9259, its music and every item whose
# hiss was kept unchanged; STOI unchanged (its bands end under 4.5 kHz). Over the whole
# band, not from 4.5 kHz: STOI of the speech with the hiss kept 0.8611 -> 0.8581; applied to
# every reel from 4.5 kHz: music 0.8385 -> 0.8450 (a factor of 0.7 there: 0.8438).
COURSE_FACTOR, COURSE_FROM_HZ, COURSE_OCTAVES = 1.5, 4500.0, 1.0 / 3.0
# A column further than this under the frame's loudest counts as this far under: digital
# silence beside programme (a reel's lead, an edit) would drag the mean down and raise the
# programme's columns by half the depth of that silence. On the speech development set a
# third of an octave spans at most 47 dB over a frame, so this changes nothing there.
COURSE_RANGE_DB = 60.0
# The most `hold_at_hiss` raises a column of the model's band towards the lost hiss: where
# the band is all but silent (the model's own near-zero), it stays so rather than turning
# rounding into hiss.
HOLD_MAX_DB = 40.0


def skirt_rules(followed: np.ndarray) -> np.ndarray:
    """The skirt constants as `_reel_gains` reads them, one row per reel: depth (ln power),
    hold (amplitude factor), trust (ln power squared), trusted depth, free depth (ln power).
    `followed` (S,) dB: where over 0, the reel's loss was read from the reel itself
    (`skirt.fit_floor`, `skirt.fit_lobes`) that deep, and its curve is the gain wherever the
    reel lifts, as deep as that (the free depth, at most `LIFT_MAX_DB`) whatever the model's
    word, and further down held within `SKIRT_HOLD_DB` of it; elsewhere the curve is the
    model's word's (`SKIRT_DEPTH_DB` ..., no free depth)."""
    neper = np.log(10.0) / 10.0
    fitted = np.array([SKIRT_DEPTH_DB * neper, 10.0 ** (SKIRT_HOLD_DB / 20.0), SKIRT_TRUST_COST,
                       SKIRT_TRUSTED_DEPTH_DB * neper, 0.0])
    free = np.minimum(np.asarray(followed, dtype=np.float64), LIFT_MAX_DB)[:, None] * neper
    read = np.concatenate([np.full_like(free, LIFT_MAX_DB * neper), np.full_like(free, fitted[1]),
                           np.full_like(free, SKIRT_TRUST_COST), np.full_like(free, LIFT_MAX_DB * neper), free], axis=1)
    return np.where(free > 0.0, read, fitted)


def merge_gains(cutoff_bins: np.ndarray, n_bins: int, fade_bins: int) -> np.ndarray:
    """Weight of the input spectrum per row and bin: 1 up to the cutoff bin, then a
    raised-cosine fade to 0 over `fade_bins` bins. Models keep their input's band with the
    same curve (`reelrestore.models.spectral.keep_gains`; tests/test_spectral_parity.py).

    cutoff_bins: (B,) float — last bin kept from the input, per row
    returns:     (B, n_bins) float32
    """
    k = np.arange(n_bins)[None, :] - np.asarray(cutoff_bins, dtype=np.float64)[:, None]
    ramp = np.clip(k / max(fade_bins, 1), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


def added_band_limit(dry: np.ndarray, cutoff_bins: np.ndarray, hiss_db: np.ndarray,
                     level_bins: float = 0.0) -> np.ndarray:
    """The loudest band the engine lets a model add above the cutoff, per row and bin.

    A model's band is a guess; on real recordings an over-loud guess is worse than the
    untouched input. The limit continues the recording's own spectrum: the level of the
    quarter octave under the cutoff, level up to bin `level_bins` (the engine passes
    `LIMIT_LEVEL_HZ`), then falling as steeply as the octave under the cutoff falls
    (least squares on log frequency), at least `LIMIT_SLOPE_DB[1]` and at most
    `LIMIT_SLOPE_DB[0]` dB per octave; and never below the print's hiss where the cut took
    it away (`hiss_db`, from `cutoff.CutoffDecision`; -inf where the input kept its floor).

    dry: (B, 2, bins, T); cutoff_bins, hiss_db: (B,) -> (B, bins) mean STFT power per bin
    """
    out = np.empty((dry.shape[0], dry.shape[2]))
    _limit_kernel(dry, np.asarray(cutoff_bins, dtype=np.float64), np.asarray(hiss_db, dtype=np.float64),
                  LIMIT_SLOPE_DB[0], LIMIT_SLOPE_DB[1], float(level_bins), out)
    return out


@numba.njit(cache=True, nogil=True)
def _limit_kernel(dry, cutoff_bins, hiss_db, steepest, gentlest, level_bins, out):  # pragma: no cover  (compiled)
    """`added_band_limit` row by row: out (B, bins) = the limit's power, inf where none."""
    n_rows, _, n_bins, n_frames = dry.shape
    db = np.empty(n_bins)
    for b in range(n_rows):
        for k in range(n_bins):  # mean power over the frame, in dB
            acc = 0.0
            for t in range(n_frames):
                acc += dry[b, 0, k, t] * dry[b, 0, k, t] + dry[b, 1, k, t] * dry[b, 1, k, t]
            db[k] = 10.0 * np.log10(acc / n_frames + 1e-30)
        cut = cutoff_bins[b]
        out[b, :] = np.inf
        # the octave under the cutoff, x = log2(bin / cutoff): a least-squares slope on it
        n, sum_x, sum_y = 0, 0.0, 0.0
        for k in range(1, n_bins):
            if 2 * k > cut and k <= cut:
                n += 1
                sum_x += np.log2(k / cut)
                sum_y += db[k]
        if n == 0:
            continue  # a cutoff under two bins: nothing to continue
        x_mean, y_mean = sum_x / n, sum_y / n
        cov, var, n_top, sum_top = 0.0, 0.0, 0, 0.0
        for k in range(1, n_bins):
            if 2 * k > cut and k <= cut:
                x = np.log2(k / cut)
                cov += (x - x_mean) * (db[k] - y_mean)
                var += (x - x_mean) ** 2
                if x > -0.25:  # the quarter octave under the cutoff: the level to continue
                    n_top += 1
                    sum_top += db[k]
        slope = cov / var if n >= 2 and var > 0.0 else gentlest
        slope = min(max(slope, steepest), gentlest)
        level = sum_top / n_top if n_top else db[min(max(int(np.floor(cut)), 1), n_bins - 1)]
        knee = max(cut, level_bins)  # level up to here, then falling
        for k in range(1, n_bins):
            if k > cut:
                fall = slope * np.log2(k / knee) if k > knee else 0.0
                out[b, k] = 10.0 ** (max(level + fall, hiss_db[b]) / 10.0)


def limit_band(wet: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Scale the model's band down per bin wherever its mean power over the frame exceeds
    `limit` ((B, bins) power, `added_band_limit`; inf: no limit), as `merge` does with its
    `limit`. For a band held at the lost hiss afterwards (`hold_at_hiss`): the limit caps the
    model's guess, and the hiss it is then held at stays whole. In place on `wet`, which is
    returned.

    wet: (B, 2, bins, T)
    """
    power = np.einsum("bckt,bckt->bk", wet, wet, dtype=np.float64) / wet.shape[-1]
    scale = np.sqrt(np.minimum(1.0, limit / np.maximum(power, 1e-30)))
    wet *= scale.astype(wet.dtype)[:, None, :, None]
    return wet


def hold_at_hiss(wet: np.ndarray, keep: np.ndarray, hiss_db: np.ndarray,
                 band_bins: int = MERGE_BAND_BINS) -> np.ndarray:
    """Hold the model's band at least at the print's lost hiss, column by column.

    Where the hiss went with the cut and the reel's pauses show its level
    (`cutoff.CutoffDecision.holds_hiss`), the reference above the cut holds that hiss at
    every moment; a model's band that falls under it (above a few kHz, or where the
    programme pauses) is raised to it: per STFT column and bin, by the factor that brings
    the band's power averaged over `band_bins` neighbouring bins up to the hiss's, at most
    `HOLD_MAX_DB`. Bins the input keeps (keep = 1) and rows whose level is -inf are left
    as they are; louder bins too. In place on `wet`, which is returned.

    wet: (B, 2, bins, T); keep: (B, bins) from `merge_gains`; hiss_db: (B,) the hiss's
    mean STFT power per bin, dB (`CutoffDecision.hiss_db`), -inf where nothing is held.
    """
    _hold_kernel(wet, keep, np.asarray(hiss_db, dtype=np.float64), band_bins // 2, 10.0 ** (HOLD_MAX_DB / 10.0))
    return wet


def steepen_course(wet: np.ndarray, from_bins: np.ndarray, factor: float = COURSE_FACTOR,
                   octaves: float = COURSE_OCTAVES) -> np.ndarray:
    """Make the course of the model's band over the frame's columns `factor` times as steep,
    from bin `from_bins` of each row up (`COURSE_FACTOR`): each `octaves` of it (at least a
    bin), its power per column in dB about its mean over the columns, times `factor`. The
    mean in dB stays; a column more than `COURSE_RANGE_DB` under the loudest counts as that
    far under (silence does not raise the rest). Bins under `from_bins` are left as they
    are, and rows whose `from_bins` is inf entirely. In place on `wet`, which is returned.

    wet: (B, 2, bins, T); from_bins: (B,) float, the first bin changed per row
    """
    _course_kernel(wet, np.asarray(from_bins, dtype=np.float64), float(factor), 2.0 ** float(octaves), COURSE_RANGE_DB)
    return wet


@numba.njit(cache=True, nogil=True)
def _course_kernel(wet, from_bins, factor, step, range_db):  # pragma: no cover  (compiled)
    n_rows, _, n_bins, n_frames = wet.shape
    db = np.empty(n_frames)
    for r in range(n_rows):
        if not np.isfinite(from_bins[r]):
            continue
        lo = int(np.ceil(from_bins[r]))
        while lo < n_bins - 1:
            hi = min(n_bins, max(lo + 1, int(lo * step)))
            loudest = -np.inf
            for t in range(n_frames):
                acc = 0.0
                for c in range(2):
                    for k in range(lo, hi):
                        acc += wet[r, c, k, t] * wet[r, c, k, t]
                db[t] = 10.0 * np.log10(acc + 1e-20)
                loudest = max(loudest, db[t])
            mean = 0.0
            for t in range(n_frames):
                db[t] = max(db[t], loudest - range_db)
                mean += db[t]
            mean /= n_frames
            for t in range(n_frames):
                g = 10.0 ** ((factor - 1.0) * (db[t] - mean) / 20.0)
                for c in range(2):
                    for k in range(lo, hi):
                        wet[r, c, k, t] *= g
            lo = hi


@numba.njit(cache=True, nogil=True)
def _hold_kernel(wet, keep, hiss_db, half, max_ratio):  # pragma: no cover  (compiled)
    n_rows, _, n_bins, n_frames = wet.shape
    csum = np.empty(n_bins + 1)
    for b in range(n_rows):
        if not np.isfinite(hiss_db[b]):
            continue
        floor = 10.0 ** (hiss_db[b] / 10.0)
        first = 0
        while first < n_bins and keep[b, first] >= 1.0:
            first += 1
        for t in range(n_frames):
            csum[0] = 0.0
            for k in range(n_bins):
                csum[k + 1] = csum[k] + wet[b, 0, k, t] * wet[b, 0, k, t] + wet[b, 1, k, t] * wet[b, 1, k, t]
            for k in range(first, n_bins):
                lo, hi = max(k - half, 0), min(k + half + 1, n_bins)
                mean = (csum[hi] - csum[lo]) / (hi - lo)
                if mean < floor:
                    g = np.sqrt(min(floor / max(mean, 1e-30), max_ratio))
                    wet[b, 0, k, t] *= g
                    wet[b, 1, k, t] *= g


class MergeRules(NamedTuple):
    """`merge`'s rules as its kernel reads them (powers and amplitude factors, not dB), made
    from the module's constants at each call (`merge_rules`): one argument for the compiled
    kernel, not sixteen."""

    lift_max: float  # `LIFT_MAX_DB`, amplitude
    smooth: float  # `LIFT_SMOOTH_OCTAVES`: the half-window's share of a bin's frequency
    headroom: float  # `KEPT_LIFT_HEADROOM_DB`, power
    floor_margin: float  # `KEPT_FLOOR_MARGIN`
    stray_frame: float  # `STRAY_RESIDUE_DB`, power
    stray_column: float  # `STRAY_COLUMN_DB`, power
    stray_click: float  # `STRAY_CLICK_DB`, power
    stray_click_slope: float  # `STRAY_CLICK_SLOPE`
    stray_run: int  # `STRAY_COLUMN_RUN`
    course_share: float  # `KEPT_COURSE_SHARE`
    course_max: float  # `KEPT_COURSE_MAX_DB`, power
    course_min: float  # `KEPT_COURSE_MIN_RESIDUE`
    course_columns: float  # `KEPT_COURSE_COLUMNS`
    pooled_span: float  # `KEPT_POOLED_OCTAVES`, as a frequency ratio
    pooled_soft: float  # `KEPT_POOLED_SOFT`
    pooled_exponent: float  # `KEPT_POOLED_EXPONENT`
    upper_exponent: float  # `KEPT_POOLED_UPPER_EXPONENT`
    chance: float  # `KEPT_POOLED_CHANCE`
    model_course: float  # `KEPT_MODEL_COURSE`


def merge_rules() -> MergeRules:
    """`MergeRules` from the module's constants as they are now."""
    return MergeRules(
        lift_max=10.0 ** (LIFT_MAX_DB / 20.0), smooth=2.0 ** (LIFT_SMOOTH_OCTAVES / 2.0) - 1.0,
        headroom=10.0 ** (KEPT_LIFT_HEADROOM_DB / 10.0), floor_margin=float(KEPT_FLOOR_MARGIN),
        stray_frame=10.0 ** (STRAY_RESIDUE_DB / 10.0), stray_column=10.0 ** (STRAY_COLUMN_DB / 10.0),
        stray_click=10.0 ** (STRAY_CLICK_DB / 10.0), stray_click_slope=float(STRAY_CLICK_SLOPE),
        stray_run=int(STRAY_COLUMN_RUN), course_share=float(KEPT_COURSE_SHARE),
        course_max=10.0 ** (KEPT_COURSE_MAX_DB / 10.0), course_min=float(KEPT_COURSE_MIN_RESIDUE),
        course_columns=float(KEPT_COURSE_COLUMNS), pooled_span=2.0 ** KEPT_POOLED_OCTAVES,
        pooled_soft=float(KEPT_POOLED_SOFT), pooled_exponent=float(KEPT_POOLED_EXPONENT),
        upper_exponent=float(KEPT_POOLED_UPPER_EXPONENT), chance=float(KEPT_POOLED_CHANCE),
        model_course=float(KEPT_MODEL_COURSE))


def merge(dry: np.ndarray, wet: np.ndarray, keep: np.ndarray, mix: float,
          limit: np.ndarray | None = None, band_bins: int = MERGE_BAND_BINS,
          columns: slice = slice(None), floor: np.ndarray | None = None,
          lift: np.ndarray | None = None, leakage: np.ndarray | None = None,
          inner: slice = slice(None), reel_sums: np.ndarray | None = None,
          reel_of: np.ndarray | None = None, skirts: np.ndarray | None = None,
          followed: np.ndarray | None = None) -> np.ndarray:
    """Add the model's band to the recording; never paint over what the recording holds.

        out = dry + mix · (1 - keep) · g · wet,   g = sqrt(max(0, 1 - P_dry / P_wet))

    (times the gate below where the input keeps its own hiss above the cut)

    with P the power of each STFT frame averaged over `band_bins` neighbouring bins.
    Below the cutoff (keep = 1) the output is the input. Above it, what the input holds
    there (the print's hiss, residue of the signal) stays, and the model only adds the
    power it finds missing: where the input is silent the model's band comes in whole,
    where the input is already as loud as the model's estimate nothing is added. A
    model that returns the input above the cutoff therefore changes nothing (with the
    lift below, nearly nothing: its residue is raised by sqrt((D - F) / (D - F - L)), L the
    small part the window leaks there from under the cut). With
    `limit` ((B, bins) power, from `added_band_limit`), the model's band is first scaled
    down per bin wherever its mean power over the frame exceeds the limit.

    **The lift** (rows whose `lift` is not `LIFT_NONE`): where the input still holds the
    signal above the cutoff, only weakened by the cut's skirt, that residue *is* the
    recording's band — its partials, consonants and transients, in their place and time —
    and the model's level says how much the cut took. The residue is raised towards it,
    and where it is raised it is the band — the model adds nothing there (filling the
    residue's quiet moments with the model's band would blur its time course; on the
    development set it cost 0.06 in LSD and 0.03 in STOI):

        out = f · dry          where the bin is raised (a > 1), in the frame's inner columns
        out = dry + mix · (1 - keep) · g · wet   elsewhere, as above

    with f = 1 + mix · (1 - keep) · (a - 1), a >= 1 the residue's amplitude factor per
    bin, R = D - F - L the residue (W, D: mean power of the model's band after the limit
    and of the input over the frame's inner columns; F: the `floor` the input keeps; L:
    what the analysis window leaks there from the band under the cut, `window_leakage`;
    all summed over `band_bins`). A brick-wall cut leaves only leakage and rounding above
    it, and raising that would raise the partials under the cut: a bin is lifted only
    where the residue stands above the leakage, and a stays within `LIFT_MAX_DB`. A column
    is raised by (a - 1) · sqrt(1 - (F + L_t) / P_dry) (its share above floor and leakage,
    L_t following the column's power under the cut).
    - `LIFT_ALL`: the floor went with the cut (the input's hiss is filter residue too),
      F = 0 (or the flat floor a hiss added after the cut left, `cutoff.later_floor`) and
      the whole residue is raised, as a slit-loss equaliser would: by one gain
      per bin for the reel, a = sqrt(ΣW / ΣR) over the reel's frames so far (`reel_sums`,
      which this adds to; lifted where ΣR > Σ(F + L)), smoothed in dB over
      `LIFT_SMOOTH_OCTAVES` (`_reel_gains`), so the residue keeps its own time course from
      frame to frame and its own partials from bin to bin. With `skirts`, up to
      `SKIRT_DEPTH_DB` into the skirt the gain is the inverse of the curve (`skirt.py`)
      whose shape fits ΣW / ΣR best, at the level the cutoff fixes (-3 dB there), held
      within `SKIRT_HOLD_DB` of the model's; down to `SKIRT_TRUSTED_DEPTH_DB` where the
      curve fits within `SKIRT_TRUST_COST`. Where the reel's loss was read from the reel
      itself (`followed`: a reel that shows its hiss in its pauses, `skirt.fit_floor`, or a
      slit's lobes, `skirt.fit_lobes`), that curve is the gain wherever the reel lifts, as
      deep as it was read (the floor's to `LIFT_MAX_DB`): the model's level errs by more than
      the hold (a speech item of the development set: lifted by the model's word 13 dB more
      than the cut took at 2.4x a Butterworth-2's cutoff). The cut is fixed, and so is
      what it took: a gain that followed each frame's model level pumped the band at the
      hop rate and bent the speech envelope (on the development set, 2.2 at the true
      cutoff, hiss cut: LSD above 0.988 with a gain per frame, 0.948 per reel, 0.931 per
      reel smoothed; STOI 0.871, 0.890, 0.894). A click on the print went through the cut
      with the signal, and is given back as the print held it. A click, a splice or a
      dropout *after* the cut did not: a short run of columns in which it stands far over
      what the reel's cut leaves of the model's band, the higher the deeper the skirt is, is
      neither summed into the reel's gain nor lifted (`STRAY_COLUMN_DB`, `STRAY_SLOPE`), and
      a frame whose residue stands far over it is not summed (`STRAY_RESIDUE_DB`). In those
      columns the model's band still comes in where the input lacks it, as over a bin that
      does not lift (until the fifty-second session nothing was added there: for the
      event's length the whole lifted band fell to the skirt's residue, 45 dB down for 30 ms
      at a beep's onset on a real effects clip).
    - `LIFT_OVER_FLOOR`: the input keeps its own hiss above the cut, which stays as it
      is; what stands over it is the residue, raised in the same way, by one gain per bin
      for the reel: a = sqrt(Σ(W - F) / ΣR), R = D - F - L (D read without each frame's
      `LOUDEST_COLUMNS_LEFT_OUT` loudest inner columns, so that a click on the print
      does not make a hiss-only bin look like a residue), lifted where ΣR > Σ(F + L), the
      same curves fitted. A column is raised by its share over `KEPT_FLOOR_MARGIN` times
      the floor (a chance swell of the hiss in a pause is not a residue), as above, but
      never beyond `KEPT_LIFT_HEADROOM_DB` over the model's loudest inner column merged in
      this call (per bin, over `band_bins`): a sibilant is raised as far as the loudest
      moment the model finds in the frame, a click on the print after the cut no further.
      A gain per frame with each column
      held at the model's level for it (until the twenty-seventh session) flattened the
      residue's own time course into the model's, which follows the band under the cut:
      a sibilant the residue held was not raised, and where the model's band came in over
      the residue, the speech's envelope above the cut was lost (development sets, 2.3,
      hiss kept, true cutoff / auto: music LSD above the cut 0.9259 / 0.9536 -> 0.9185 /
      0.9484, speech 0.6633 / 0.6650 -> 0.6620 / 0.6640, STOI 0.8565 / 0.8626 -> 0.8582 /
      0.8638, the input's 0.8527).

    **The gate over a kept hiss** (`LIFT_OVER_FLOOR` rows): the model's added band is
    scaled, column by column, by the share of the octave under the cut that stands above
    the hiss (`_kept_hiss_gate`: amplitude (1 - F/U)^2). Where the band under the cut holds
    only the hiss (a pause, the tail of a note), so does the reference above it: the input,
    which keeps that hiss, is the band there, and a 0.5 s frame's model band must not run
    on into it. On the development sets (2.3, hiss kept; music 196 items / speech 54 items,
    LSD above the cut and share worse than the input, STOI of the speech), no gate ->
    (1 - F/U) -> (1 - F/U)^2 -> (1 - F/U)^4: true cutoff 0.9281 (8 %) -> 0.9261 (6 %) ->
    0.9259 (5 %) -> 0.9260 (5 %) / 0.6811 (31 %) -> 0.6655 (7 %) -> 0.6633 (7 %) -> 0.6619
    (7 %), STOI 0.8537 -> 0.8559 -> 0.8565 -> 0.8569; auto 0.9554 (6 %) -> 0.9538 (5 %) ->
    0.9536 (5 %) -> 0.9537 (4 %) / 0.6776 (15 %) -> 0.6665 (4 %) -> 0.6650 (4 %) -> 0.6642
    (4 %), STOI 0.8589 -> 0.8619 -> 0.8626 -> 0.8631 (the input's 0.8527). With the hiss
    under the cut taken as the reel's floor there alone, music lost (0.9399 true with
    1 - F/U): its quietest moments still hold programme.
    And where the residue over a kept hiss shows in the frame yet is not raised (it stands
    under the floor on the reel's average), the added band takes the residue's course over
    the frame's columns instead of its own (`_residue_course`, `KEPT_COURSE_SHARE`): the
    residue, a few dB over the hiss, still carries the speech's envelope there; and in every
    bin it follows the residue pooled over its octave above the cut too (`_pooled_course`,
    `KEPT_POOLED_OCTAVES`), whose course shows where each bin's alone is lost in the hiss (an
    octave whose pooled course does not stand out of the hiss's chance swells, the octave
    under it). Where the residue shows no course of its own in a bin, the model's own course
    over the frame, which follows the band under the cut, is kept only in part
    (`KEPT_MODEL_COURSE`, `_flatten_course`).
    In place on `wet`.

    dry, wet: (B, 2, bins, T); keep: (B, bins) from `merge_gains`; mix in [0, 1];
    floor: (B, bins) power; lift: (B,) int8 of `LIFT_*` (None: no lift); leakage:
    (bins,) from `window_leakage` (None: that of the engine's periodic Hann window);
    inner: the STFT frames that see no edge of the frame (the STFT reflects the frame
    there, and the reflection leaks the band under the cut upwards): only they are read
    for the lift and lifted; reel_sums: (S, 3, bins) float64, per reel the sums of W, R
    and L over its lifted frames so far (over a kept hiss W - F, R and F + L), updated in
    place in row order, and reel_of:
    (B,) the reel of each row (None: each row a reel of its own, as a lone frame);
    skirts: (S, anchors, curves, bins) per reel the curves its cut's loss may follow, ln
    |H|^2, at each anchor (`skirt.skirt_family` at its cutoff times each of
    `SKIRT_ANCHORS`; the lift's gain is the mean in dB of the gains fitted at each; None:
    none, the model's level alone); followed: (S,) dB, per reel how deep its loss was read
    from the reel itself (`skirt.fit_floor`, `skirt.fit_lobes`; `skirts` then hold that one
    curve in every slot; 0: not read): the curve is then followed that deep wherever the reel
    lifts, not held to the model's word (`skirt_rules`; None: no reel).
    With `columns`, only those STFT frames are merged and returned (the limit and the lift
    still weigh the model's band over the whole frame).
    """
    n_rows, _, n_bins, n_frames = wet.shape
    lo, hi, step = columns.indices(n_frames)
    if step != 1:
        raise ValueError("merge: expected a contiguous range of columns")
    if limit is None:
        limit = np.full((n_rows, n_bins), np.inf)
    if lift is None or floor is None:
        lift, floor = np.full(n_rows, LIFT_NONE, dtype=np.int8), np.zeros((n_rows, n_bins))
    if leakage is None:  # worked out only when something may be lifted (the engine passes its own)
        leakage = (window_leakage(periodic_hann(2 * (n_bins - 1)), n_bins) if np.any(lift != LIFT_NONE)
                   else np.zeros(n_bins))
    if reel_sums is None or reel_of is None:  # each row a reel of its own
        reel_sums, reel_of = np.zeros((n_rows, 3, n_bins)), np.arange(n_rows)
    if reel_sums.dtype != np.float64 or reel_sums.shape[1:] != (3, n_bins) or len(reel_of) != n_rows:
        raise ValueError(f"merge: expected reel_sums (S, 3, {n_bins}) float64 and reel_of ({n_rows},)")
    if skirts is None:
        skirts = np.zeros((len(reel_sums), 1, 0, n_bins))
    inner_lo, inner_hi, _ = inner.indices(n_frames)
    _merge_kernel(dry, wet, keep, float(mix), limit, band_bins // 2, lo, hi, inner_lo, max(inner_hi, inner_lo + 1),
                  np.asarray(floor, dtype=np.float64), np.asarray(lift, dtype=np.int8),
                  np.asarray(leakage, dtype=np.float64), reel_sums, np.asarray(reel_of, dtype=np.int64),
                  np.asarray(skirts, dtype=np.float64),
                  skirt_rules(np.zeros(len(reel_sums)) if followed is None else followed), merge_rules())
    return wet[..., lo:hi]


@numba.njit(cache=True, nogil=True)
def _merge_kernel(dry, wet, keep, mix, limit, half, lo, hi, inner_lo, inner_hi, floor, lift, leakage, reel_sums,
                  reel_of, skirts, skirt_rule, rules):  # pragma: no cover  (compiled)
    """`merge` in one pass per row, in place on wet[..., lo:hi], by `rules` (`MergeRules`).
    Powers are summed over bins k - half .. k + half (fewer at the edges), the model's after
    the limit's scale; the lift's over the frame's inner columns, the missing power's per column."""
    (lift_max, smooth, headroom, floor_margin, stray_frame, stray_column, stray_click, stray_click_slope, stray_run,
     course_share, course_max, course_min, course_columns, pooled_span, pooled_soft, pooled_exponent,
     upper_exponent, chance, model_course) = rules
    n_rows, _, n_bins, n_frames = wet.shape
    n_cols = hi - lo
    p_dry = np.empty((n_bins, n_cols))
    p_wet = np.empty((n_bins, n_cols))
    sum_dry = np.empty(n_cols)
    sum_wet = np.empty(n_cols)
    scale = np.empty(n_bins)
    mean_dry = np.empty(n_bins)
    mean_wet = np.empty(n_bins)
    leak = np.zeros(n_bins)
    under_cols = np.empty(n_cols)
    gate = np.ones(n_cols)
    above_dry = np.empty(n_cols)
    above_wet = np.empty(n_cols)
    first_inner, end_inner = max(inner_lo, lo), min(inner_hi, hi)  # the inner columns merged here
    n_inner = max(0, end_inner - first_inner)
    reel_gain = np.ones(n_bins)
    stray = np.zeros(n_cols)  # 1 in the columns that hold a click after the cut (`STRAY_COLUMN_DB`)
    held_dry = np.empty(n_bins)  # over a kept hiss: the input without each bin's loudest inner columns,
    kept_wet = np.empty(n_bins)  # the model's band over the floor,
    kept_leak = np.empty(n_bins)  # and the floor with the leakage: what the reel's residue is read against
    loudest = np.empty(LOUDEST_COLUMNS_LEFT_OUT)
    n_held = inner_hi - inner_lo - LOUDEST_COLUMNS_LEFT_OUT
    course = np.ones(n_cols)  # over a kept hiss: the added band's power factor per column (`KEPT_COURSE_SHARE`)
    # ... and its factor from the residue pooled over each octave above the cut (`KEPT_POOLED_OCTAVES`),
    # per octave (rows), and where each octave ends (its last bin + 1)
    n_octaves = int(np.log2(n_bins) / np.log2(pooled_span)) + 3
    pooled = np.ones((n_octaves, n_cols))
    pooled_top = np.empty(n_octaves, dtype=np.int64)
    residue = np.empty(n_cols)
    spread = np.empty(n_cols)  # `_pooled_course`'s scratch
    beneath = np.zeros(n_cols)  # per column, what the residue over the cut is read against
    scratch = np.empty((5, n_bins + 1))  # `_reel_gains`' prefix sums, allocated once per call
    stray_left = np.empty(n_bins)  # `_stray_columns`' scratch: what the cut leaves per bin
    quiet_wet = np.empty(n_bins)  # the model's band without its loudest columns, from the cut on (`_stray_columns`)
    loudest_run = np.empty(stray_run)  # `_mean_without_loudest`'s scratch
    for b in range(n_rows):
        lifting = lift[b] != LIFT_NONE  # what only the lift reads is summed only where it lifts
        for k in range(n_bins):  # the limit and the lift weigh the band over all its columns
            acc_wet = 0.0
            for t in range(n_frames):
                acc_wet += wet[b, 0, k, t] * wet[b, 0, k, t] + wet[b, 1, k, t] * wet[b, 1, k, t]
            scale[k] = np.sqrt(min(1.0, limit[b, k] / max(acc_wet / n_frames, 1e-30)))
            if lifting:  # the lift's sums over the inner columns (a low-latency hop has none)
                inner_wet, inner_dry = 0.0, 0.0
                loudest[:] = 0.0
                for t in range(inner_lo, min(inner_hi, n_frames)):
                    inner_wet += wet[b, 0, k, t] * wet[b, 0, k, t] + wet[b, 1, k, t] * wet[b, 1, k, t]
                    p = np.float64(dry[b, 0, k, t]) ** 2 + np.float64(dry[b, 1, k, t]) ** 2
                    inner_dry += p
                    if lift[b] == LIFT_OVER_FLOOR:
                        _keep_loudest(loudest, p)
                mean_wet[k] = inner_wet / (inner_hi - inner_lo) * scale[k] * scale[k]
                mean_dry[k] = inner_dry / (inner_hi - inner_lo)
                held_dry[k] = (inner_dry - loudest.sum()) / n_held if n_held > 0 else mean_dry[k]
            for t in range(n_cols):  # rows of contiguous columns: the inner loops vectorise
                re, im = wet[b, 0, k, lo + t] * scale[k], wet[b, 1, k, lo + t] * scale[k]
                p_wet[k, t] = re * re + im * im
                # the same arithmetic (float64) for both: a model that returns the input adds nothing
                re, im = np.float64(dry[b, 0, k, lo + t]), np.float64(dry[b, 1, k, lo + t])
                p_dry[k, t] = re * re + im * im
        cut = 0  # the first bin the model's band reaches: the lift reads only from there on
        while cut < n_bins and keep[b, cut] >= 1.0:
            cut += 1
        leak[:] = 0.0
        under_mean, under_cols[:] = 0.0, 0.0
        if lift[b] != LIFT_NONE:  # what the window leaks above the cut from the band under it
            for j in range(cut):
                under_mean += mean_dry[j]
                under_cols += p_dry[j]
                for k in range(cut, n_bins):
                    leak[k] += mean_dry[j] * leakage[k - j]
        stray[:] = 0.0
        guarded = False
        if lift[b] == LIFT_ALL and n_inner > 0:  # the guard reads the model's band less an event's columns
            _mean_without_loudest(p_wet[cut:], first_inner - lo, end_inner - lo, quiet_wet[cut:], loudest_run)
            guarded = _stray_columns(p_dry, quiet_wet, leak, under_cols, under_mean, reel_sums[reel_of[b]], cut, half,
                                     first_inner - lo, end_inner - lo, stray_column, stray_click, stray_click_slope,
                                     stray_run, stray, stray_left)
        if guarded:
            n_all = inner_hi - inner_lo  # what the frame's sums read, without those columns
            n_left = n_all - stray.sum()
            for k in range(n_bins):
                wet_out, dry_out = 0.0, 0.0
                for t in range(n_cols):
                    if stray[t] > 0.0:
                        wet_out += p_wet[k, t]
                        dry_out += p_dry[k, t]
                mean_wet[k] = max(mean_wet[k] * n_all - wet_out, 0.0) / n_left
                mean_dry[k] = max(mean_dry[k] * n_all - dry_out, 0.0) / n_left
        if lift[b] != LIFT_NONE and n_inner > 0:  # the reel's gain per bin
            for k in range(n_bins):  # the residue is read over the floor (over a lost hiss: what a later one left, or 0)
                kept_leak[k] = leak[k] + floor[b, k]
            band_wet, band_dry, band_under = mean_wet, mean_dry, kept_leak
            if lift[b] == LIFT_OVER_FLOOR:  # the residue over the floor, read without the loudest columns
                for k in range(n_bins):
                    kept_wet[k] = max(mean_wet[k] - floor[b, k], 0.0)
                band_wet, band_dry = kept_wet, held_dry
            _reel_gains(reel_sums[reel_of[b]], band_wet, band_dry, band_under, keep[b], mix, cut, half, smooth,
                        reel_gain, scratch, skirts[reel_of[b]], skirt_rule[reel_of[b]], stray_frame)
        gate[:] = 1.0
        pooled[0] = 1.0  # an octave above the first is always written (its own course or the one under it)
        n_pooled = 0  # octaves read
        if lift[b] == LIFT_OVER_FLOOR:
            _kept_hiss_gate(p_dry, floor[b], cut, gate)
            bottom = cut
            while n_inner > 0 and bottom < n_bins and n_pooled < pooled.shape[0]:
                top = min(n_bins, max(bottom + 1, int(bottom * pooled_span)))
                upper = n_pooled > 0  # above the first octave: only a course out of the hiss's chance swells
                if not _pooled_course(p_dry, floor[b], leak, under_cols, under_mean, bottom, top, first_inner - lo,
                                      end_inner - lo, course_min, course_columns, pooled_soft,
                                      upper_exponent if upper else pooled_exponent, course_max,
                                      chance if upper else 0.0, residue, spread, pooled[n_pooled]) and upper:
                    pooled[n_pooled] = pooled[n_pooled - 1]  # none of its own: the octave under it
                pooled_top[n_pooled] = top
                n_pooled += 1
                bottom = top
        sum_dry[:] = 0.0
        sum_wet[:] = 0.0
        above_dry[:] = 0.0  # the same sums over bins from `cut` on only, for the lift
        above_wet[:] = 0.0
        band_floor, band_leak = 0.0, 0.0  # the floor's and the leakage's, from `cut` on
        margin = floor_margin if lift[b] == LIFT_OVER_FLOOR else 1.0  # what a column's residue stands over
        first, stop = 0, 0  # bins [first, stop) are in the running sums
        octave = 0  # the octave whose pooled course bin k follows
        for k in range(n_bins):
            while octave + 1 < n_pooled and k >= pooled_top[octave]:
                octave += 1
            while stop < min(k + half + 1, n_bins):
                for t in range(n_cols):  # scalar loops: a slice per bin costs more than the adds
                    sum_dry[t] += p_dry[stop, t]
                    sum_wet[t] += p_wet[stop, t]
                if lifting and stop >= cut:
                    for t in range(n_cols):
                        above_dry[t] += p_dry[stop, t]
                        above_wet[t] += p_wet[stop, t]
                    band_floor += floor[b, stop]
                    band_leak += leak[stop]
                stop += 1
            while first < k - half:
                for t in range(n_cols):
                    sum_dry[t] -= p_dry[first, t]
                    sum_wet[t] -= p_wet[first, t]
                if lifting and first >= cut:
                    for t in range(n_cols):
                        above_dry[t] -= p_dry[first, t]
                        above_wet[t] -= p_wet[first, t]
                    band_floor -= floor[b, first]
                    band_leak -= leak[first]
                first += 1
            share = mix * (1.0 - keep[b, k])
            weight = share * scale[k]
            raise_by = 1.0  # a: the residue's amplitude factor, one per bin for the reel
            if lift[b] != LIFT_NONE and share > 0.0 and n_inner > 0:
                raise_by = reel_gain[k]
            if raise_by > lift_max:  # so deep under the model's level it is not the signal: left as it is
                raise_by = 1.0
            most = np.inf  # over a kept hiss, a column's power at most: headroom over the model's loudest
            if lift[b] == LIFT_OVER_FLOOR and raise_by > 1.0:
                most = 0.0
                for t in range(first_inner, end_inner):
                    most = max(most, above_wet[t - lo])
                most *= headroom
            if lifting and share > 0.0:  # per column, what its residue stands over: floor (times margin), leakage
                for t in range(n_cols):
                    beneath[t] = band_floor * margin + band_leak * under_cols[t] / max(under_mean, 1e-30)
            course[:] = 1.0
            if lift[b] == LIFT_OVER_FLOOR and n_inner > 0 and share > 0.0:
                if not _residue_course(above_dry, above_wet, beneath, first_inner - lo, end_inner - lo,
                                       band_floor * course_min, course_columns, course_share, course_max, residue,
                                       course) and model_course < 1.0:
                    _flatten_course(above_wet, first_inner - lo, end_inner - lo, 1.0 - model_course, course_max,
                                    course)
            for t in range(n_cols):
                factor = 1.0
                if raise_by > 1.0 and above_dry[t] > 1e-30 and inner_lo <= lo + t < inner_hi and stray[t] == 0.0:
                    factor = 1.0 + (raise_by - 1.0) * np.sqrt(max(0.0, 1.0 - beneath[t] / above_dry[t]))
                    factor = min(factor, np.sqrt(max(most, above_dry[t]) / above_dry[t]))  # not a click
                    factor = 1.0 + share * (factor - 1.0)
                missing = 1.0 - factor * factor * sum_dry[t] / sum_wet[t] if sum_wet[t] > 1e-30 else 0.0
                shaped = course[t] * pooled[octave, t]  # the residue's course, bin by bin and pooled
                gain = weight * np.sqrt(min(missing, 1.0) * shaped) * gate[t] if missing > 0.0 else 0.0
                if raise_by > 1.0 and inner_lo <= lo + t < inner_hi and stray[t] == 0.0:
                    gain = 0.0  # the residue, raised, is the band here: its quiet moments stay quiet
                # (a column that holds a stray event is not raised: the model's band comes in where missing)
                for part in range(2):
                    wet[b, part, k, lo + t] = factor * dry[b, part, k, lo + t] + gain * wet[b, part, k, lo + t]


@numba.njit(cache=True, nogil=True, inline="always")
def _over_leakage(p_dry, leak, under_cols, under_mean, k, t):  # pragma: no cover  (compiled)
    """Column t's power in bin k less what the window leaks there from under the cut (the
    frame's leakage `leak` scaled by the column's share of the band under the cut)."""
    return p_dry[k, t] - leak[k] * under_cols[t] / max(under_mean, 1e-30)


@numba.njit(cache=True, nogil=True)
def _stray_columns(p_dry, mean_wet, leak, under_cols, under_mean, sums, cut, half, first, stop, ratio, click,
                   click_slope, run, stray, left):  # pragma: no cover  (compiled)
    """Mark 1 in `stray` (columns,) the runs of at most `run` of columns first .. stop - 1
    that hold an event made after the cut. What the cut leaves of the model's band in a bin
    that lifts (ΣR > ΣL in the reel's `sums` so far): the reel's ΣR / ΣW times the frame's W
    (`mean_wet`: without its loudest columns, `_mean_without_loudest`; over bins k - half ..
    k + half, per bin). A column, the window's leakage from under the cut taken off, that
    stands more than `ratio` times over it in some bin is marked unless its event went
    through the cut (`STRAY_SLOPE`); one that stands only `click` times over it, where its
    event did not, over at least `STRAY_CLICK_SHARE` of the bins that lift (`STRAY_CLICK_SLOPE`:
    a click's flat spectrum over the skirt's). Whether any column is so marked. `left` (bins,) is scratch:
    per bin that lifts, what the cut leaves there (-1 where nothing lifts)."""
    n_bins = p_dry.shape[0]
    found = False
    left[:] = -1.0
    for k in range(cut, n_bins):
        if sums[0, k] <= 0.0 or sums[1, k] <= sums[2, k]:
            continue  # lifts nothing (yet): no residue to stand over
        a, z = max(cut, k - half), min(n_bins, k + half + 1)
        band_wet = 0.0
        for j in range(a, z):
            band_wet += mean_wet[j]
        left[k] = sums[1, k] / sums[0, k] * band_wet / (z - a)
        for t in range(first, stop):
            if stray[t] < 2.0:
                over = _over_leakage(p_dry, leak, under_cols, under_mean, k, t)
                if over > ratio * left[k]:
                    stray[t] = 2.0  # over the guard
                    found = True
                elif over > click * left[k]:
                    stray[t] = 1.0  # over the click's guard only
                    found = True
    if not found:
        return False
    # the footprint of a marked column: how its event's excess over what the cut leaves grows
    # with the skirt's depth. About as high over shallow and deep bins, it went through the cut
    # (`STRAY_SLOPE`): the recording's, lifted like the rest; growing as the depth does, it is a
    # click's flat spectrum made after the cut (`STRAY_CLICK_SLOPE`)
    for t in range(first, stop):
        if stray[t] == 0.0:
            continue
        n, n_lifting, sd, se, sdd, sde = 0, 0, 0.0, 0.0, 0.0, 0.0
        for k in range(cut, n_bins):
            if left[k] < 0.0:
                continue  # lifts nothing
            n_lifting += 1
            over = _over_leakage(p_dry, leak, under_cols, under_mean, k, t)
            if left[k] <= 0.0 or over <= STRAY_FOOTPRINT_OVER * left[k]:
                continue  # the event's footprint: where the column stands well over what the cut leaves
            d = np.log10(sums[0, k] / sums[1, k])
            e = np.log10(over / left[k])
            n += 1
            sd += d
            se += e
            sdd += d * d
            sde += d * e
        slope = -np.inf  # a footprint too narrow to read a slope from (a tone's few bins)
        if n > 2 and n >= STRAY_FOOTPRINT * n_lifting:
            var = sdd - sd * sd / n
            slope = (sde - sd * se / n) / var if var > 1e-12 else 0.0
        if stray[t] == 2.0:
            stray[t] = 0.0 if STRAY_SLOPE > slope > -np.inf else 1.0
        else:
            stray[t] = 1.0 if slope >= click_slope and n >= STRAY_CLICK_SHARE * n_lifting else 0.0
    t = first
    while t < stop:  # a longer run is the recording's own
        if stray[t] > 0.0:
            u = t
            while u < stop and stray[u] > 0.0:
                u += 1
            if u - t > run:
                stray[t:u] = 0.0
            t = u
        else:
            t += 1
    return stray.sum() > 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _keep_loudest(loudest, x):  # pragma: no cover  (compiled)
    """Keep in `loudest` (ascending, loudest[0] the least) the largest values seen: x goes in
    where it is larger than the least."""
    if x > loudest[0]:
        j = 0
        while j + 1 < loudest.size and loudest[j + 1] < x:
            loudest[j] = loudest[j + 1]
            j += 1
        loudest[j] = x


@numba.njit(cache=True, nogil=True)
def _mean_without_loudest(p, first, stop, out, loudest):  # pragma: no cover  (compiled)
    """Write into `out` (bins,) the mean of each row of `p` (bins, columns) over columns
    first .. stop - 1 without its `loudest.size` loudest (all of them where there are no more).
    `loudest` is scratch (`_keep_loudest`)."""
    for k in range(p.shape[0]):
        loudest[:] = 0.0
        total = 0.0
        for t in range(first, stop):
            total += p[k, t]
            _keep_loudest(loudest, p[k, t])
        kept = stop - first - loudest.size
        out[k] = (total - loudest.sum()) / kept if kept > 0 else total / max(stop - first, 1)


@numba.njit(cache=True, nogil=True)
def _kept_hiss_gate(p_dry, floor, cut, gate):  # pragma: no cover  (compiled)
    """Write into `gate` (columns,) the amplitude factor for the model's band per column:
    the square of the share of the octave under the cut that stands above the hiss,
    (1 - F / U)^2, U the column's power over bins cut/2 .. cut - 1, F the hiss's there (0
    where U <= F). The hiss per bin is the reel's floor there, at most the floor the input
    keeps at 1.5-2x the cut, where it holds the hiss alone (the reel's quietest moments
    under the cut may still hold programme). p_dry: (bins, columns) power; floor: (bins,)
    power. Left at 1 where the cut is under two bins or no floor was read."""
    n_bins = floor.size
    if cut < 2:
        return  # no octave under the cut to read
    kept, n_kept = 0.0, 0
    for k in range(cut + cut // 2, min(2 * cut, n_bins)):
        kept += floor[k]
        n_kept += 1
    hiss = 0.0
    for k in range(cut // 2, cut):
        hiss += min(floor[k], kept / n_kept) if n_kept > 0 else floor[k]
    if hiss <= 0.0:
        return  # no floor read: no gate
    gate[:] = 0.0  # U per column, summed row by row (contiguous columns: the adds vectorise)
    for k in range(cut // 2, cut):
        gate += p_dry[k]
    for t in range(gate.size):
        gate[t] = max(0.0, 1.0 - hiss / gate[t]) ** 2 if gate[t] > 0.0 else 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _inner_mean(x, first, stop):  # pragma: no cover  (compiled)
    """The mean of x[first:stop] (the frame's inner columns), summed in order."""
    total = 0.0
    for t in range(first, stop):
        total += x[t]
    return total / (stop - first)


@numba.njit(cache=True, nogil=True, inline="always")
def _three_columns(x, t):  # pragma: no cover  (compiled)
    """The mean of x[t] and its two neighbours (the edge column counted twice at the ends)."""
    n = x.size
    return (x[max(t - 1, 0)] + x[t] + x[min(t + 1, n - 1)]) / 3.0


@numba.njit(cache=True, nogil=True)
def _follow_residue(residue, first, stop, least, columns, soft, course):  # pragma: no cover  (compiled)
    """Write into `course` (columns,) the power factor (r + c r̄) / ((1 + c) r̄) that follows
    `residue` (columns,) power over the floor: r a column's with its two neighbours', r̄ the
    mean over the frame's inner columns [first, stop), c `soft`. Whether it did: not where r̄
    is under `least` or the residue shows in fewer than `columns` (a share) of those columns
    (`course` then untouched)."""
    n = residue.size
    mean, showing = 0.0, 0
    for t in range(first, stop):
        mean += residue[t]
        showing += residue[t] > 0.0
    mean /= stop - first
    if mean < least or mean <= 0.0 or showing < columns * (stop - first):
        return False
    for t in range(n):
        course[t] = (_three_columns(residue, t) + soft * mean) / ((1.0 + soft) * mean)
    return True


@numba.njit(cache=True, nogil=True)
def _residue_course(above_dry, above_wet, beneath, first, stop, least, columns, share, most, residue,
                    course):  # pragma: no cover  (compiled)
    """Write into `course` (columns,) the power factor that gives the model's added band the
    residue's course over the frame (`KEPT_COURSE_SHARE`) for one bin: `above_dry` and
    `above_wet` (columns,) the input's and the model's power over its `MERGE_BAND_BINS`,
    `beneath` (columns,) what the residue stands over there (the floor times its margin, the
    leakage), [first, stop) the frame's inner columns, `share` s, `most` the largest factor:
    `_follow_residue`, the model's own course taken out (its mean over the frame against the
    column's). Whether it did (else `course` is untouched). `residue`: (columns,) scratch."""
    for t in range(residue.size):
        residue[t] = max(0.0, above_dry[t] - beneath[t])
    if not _follow_residue(residue, first, stop, least, columns, share, course):
        return False
    mean_wet = _inner_mean(above_wet, first, stop)
    for t in range(course.size):
        if above_wet[t] > 0.0:
            course[t] *= mean_wet / above_wet[t]
        course[t] = min(course[t], most)
    return True


@numba.njit(cache=True, nogil=True)
def _flatten_course(above_wet, first, stop, depth, most, course):  # pragma: no cover  (compiled)
    """Write into `course` (columns,) the power factor (w̄ / w)^depth that takes `depth` of the
    model's own course over the frame out of its added band (`KEPT_MODEL_COURSE`): w a column's
    power in `above_wet` (columns,), w̄ its mean over the inner columns [first, stop); the
    ratio within 1 / `most` .. `most`."""
    mean_wet = _inner_mean(above_wet, first, stop)
    if mean_wet <= 0.0:
        return
    half = depth == 0.5  # the default: a square root costs a tenth of a power
    for t in range(course.size):
        ratio = min(max(mean_wet / above_wet[t] if above_wet[t] > 0.0 else most, 1.0 / most), most)
        course[t] = np.sqrt(ratio) if half else ratio ** depth


@numba.njit(cache=True, nogil=True)
def _pooled_course(p_dry, floor, leak, under_cols, under_mean, bottom, top, first, stop, least, columns, soft,
                   exponent, most, chance, residue, spread, pooled):  # pragma: no cover  (compiled)
    """Write into `pooled` (columns,) the power factor that gives the model's added band, over a
    kept hiss, the course of the residue pooled over bins bottom .. top - 1 (an octave,
    `KEPT_POOLED_OCTAVES`): `_follow_residue` of the input's power over that band less the
    floor's and the window's leakage from under the cut (following the column's power under it,
    `under_cols` against `under_mean`), c `soft`, at most `most`, to the power `exponent`; its
    mean held to `least` of the floor's power there. With `chance` > 0, only where the
    interquartile range of the band's power over the inner columns [first, stop) (three-column
    means) exceeds `chance` / sqrt(top - bottom) of its median (`KEPT_POOLED_CHANCE`). Whether
    it did (else `pooled` is untouched). p_dry: (bins, columns) power; floor, leak: (bins,) power;
    residue: (columns,) scratch."""
    if top <= bottom or stop <= first:
        return False
    residue[:] = 0.0
    band_floor, band_leak = 0.0, 0.0
    for k in range(bottom, top):  # contiguous columns per bin: the adds vectorise
        residue += p_dry[k]
        band_floor += floor[k]
        band_leak += leak[k]
    if chance > 0.0:  # does the band's course stand out of the hiss's chance swells (and not a click's)?
        m = stop - first
        for t in range(first, stop):
            spread[t - first] = _three_columns(residue, t)
        spread[:m].sort()
        if spread[3 * m // 4] - spread[m // 4] <= chance / np.sqrt(top - bottom) * spread[m // 2]:
            return False
    for t in range(residue.size):
        residue[t] = max(0.0, residue[t] - band_floor - band_leak * under_cols[t] / max(under_mean, 1e-30))
    if not _follow_residue(residue, first, stop, least * band_floor, columns, soft, pooled):
        return False
    for t in range(pooled.size):
        pooled[t] = min(pooled[t], most) ** exponent
    return True


@numba.njit(cache=True, nogil=True)
def _reel_gains(sums, mean_wet, mean_dry, leak, keep, mix, cut, half, smooth, gain, scratch, skirts,
                skirt_rule, stray_frame):  # pragma: no cover
    """Add one frame's band sums over bins k - half .. k + half (from `cut` on) to the
    reel's `sums` (3, bins): the model's band W, the residue R, the leakage L. Write the
    reel's lift gain per bin into `gain`: sqrt(ΣW / ΣR), its logarithm averaged over the
    bins within `smooth` x k of k that lift (ΣR > ΣL); 1 where a bin does not lift. With
    `skirts` (anchors, curves, bins) ln |H|^2 (`skirt.skirt_family` at each anchor), where
    the chosen curve has lost at most the depth (`skirt_rule`, the reel's row of `skirt_rules`), 1 / |H|
    instead, held within the hold (amplitude factor) of that (not where it has lost at most the
    free depth: a curve read from the reel itself): the curve is the one whose
    shape fits ln(ΣW / ΣR) best (`_fit_skirt`); its level is the anchor's. A curve that fits
    within the trust is fitted again and followed down to the trusted depth. The gain is the
    mean in dB of the gains so found at each anchor. A bin whose residue stands more than
    `stray_frame` (power ratio) over the reel's ΣR / ΣW times the frame's W is not added
    (`STRAY_RESIDUE_DB`). scratch: (5, bins + 1), overwritten."""
    n_bins = mean_wet.size
    skirt_hold = skirt_rule[1]
    totals = scratch[:3]  # prefix sums from `cut` on: W, D, L
    totals[:, : cut + 1] = 0.0
    for k in range(cut, n_bins):
        totals[0, k + 1] = totals[0, k] + mean_wet[k]
        totals[1, k + 1] = totals[1, k] + mean_dry[k]
        totals[2, k + 1] = totals[2, k] + leak[k]
    for k in range(cut, n_bins):
        if mix * (1.0 - keep[k]) > 0.0:
            a, z = max(cut, k - half), min(n_bins, k + half + 1)
            band_leak = totals[2, z] - totals[2, a]
            band_wet = max(totals[0, z] - totals[0, a], 0.0)
            residue = max(totals[1, z] - totals[1, a] - band_leak, 0.0)
            if sums[1, k] > 0.0 and residue * sums[0, k] > stray_frame * sums[1, k] * band_wet:
                continue  # not what the cut left (see `STRAY_RESIDUE_DB`)
            sums[0, k] += band_wet
            sums[1, k] += residue
            sums[2, k] += band_leak
    log_gain, count = scratch[3], scratch[4]  # prefix sums of ln(ΣW / ΣR) over the bins that lift, their count
    log_gain[0], count[0] = 0.0, 0.0
    first_lift, last_lift = n_bins, -1  # the window stays symmetric within them: the loss is steep at their ends
    for k in range(n_bins):
        ok = k >= cut and sums[1, k] > sums[2, k] and sums[1, k] > 1e-30 and sums[0, k] > 1e-30
        log_gain[k + 1] = log_gain[k] + (np.log(sums[0, k] / sums[1, k]) if ok else 0.0)
        count[k + 1] = count[k] + (1.0 if ok else 0.0)
        if ok:
            first_lift, last_lift = min(first_lift, k), k
    model_gain = scratch[2]  # the model's word, smoothed: the same at every anchor (scratch[2] is free now)
    for k in range(n_bins):
        model_gain[k] = 1.0
        if count[k + 1] > count[k]:
            w = min(int(k * smooth), k - first_lift, last_lift - k)
            a, z = k - w, k + w + 1
            model_gain[k] = max(np.exp(0.5 * (log_gain[z] - log_gain[a]) / (count[z] - count[a])), 1.0)
        gain[k] = 0.0  # the mean over the anchors of ln(gain)
    for curves in skirts:  # (curves, bins) at each anchor
        skirt_depth = skirt_rule[0]
        best, best_cost = -1, np.inf  # the skirt curve that fits the model's word best: its shape, not its level
        if curves.shape[0] > 0 and last_lift >= first_lift:
            best, best_cost = _fit_skirt(curves, log_gain, count, first_lift, last_lift, skirt_depth, scratch)
            if best >= 0 and best_cost <= skirt_rule[2]:  # the loss follows a curve: read it deeper, follow it further
                skirt_depth = skirt_rule[3]
                best, best_cost = _fit_skirt(curves, log_gain, count, first_lift, last_lift, skirt_depth, scratch)
        for k in range(n_bins):
            g = model_gain[k]
            if count[k + 1] > count[k] and best >= 0 and -curves[best, k] <= skirt_depth:
                curve = np.exp(-0.5 * curves[best, k])
                if -curves[best, k] <= skirt_rule[4]:  # read from the reel itself this deep: the loss
                    g = max(curve, 1.0)
                else:
                    g = max(min(max(curve, g / skirt_hold), g * skirt_hold), 1.0)
            gain[k] += np.log(g)
    for k in range(n_bins):
        gain[k] = np.exp(gain[k] / skirts.shape[0])


@numba.njit(cache=True, nogil=True)
def _fit_skirt(skirts, log_gain, count, first_lift, last_lift, depth, scratch):  # pragma: no cover
    """(curve, cost): the curve of `skirts` whose shape fits y = ln(ΣW / ΣR) best over the
    bins that lift and that the model finds at most `depth` down (each octave weighing the
    same); the cost is the spread of y + ln|H|^2 about its mean. scratch[:2] is overwritten."""
    fit_bin, fit_y = scratch[0], scratch[1]  # the bins the fit reads, y there
    n_fit = 0
    for k in range(first_lift, last_lift + 1):
        y = log_gain[k + 1] - log_gain[k]  # ln(ΣW / ΣR)
        if count[k + 1] > count[k] and y <= depth:  # the same bins for every curve
            fit_bin[n_fit], fit_y[n_fit] = k, y
            n_fit += 1
    best, best_cost = -1, np.inf
    for j in range(skirts.shape[0] if n_fit > 0 else 0):  # y + ln|H|^2 is 0 where the curve is the loss
        s0, s1, s2 = 0.0, 0.0, 0.0
        for i in range(n_fit):
            k = int(fit_bin[i])
            weight = 1.0 / k  # each octave weighs the same
            d = fit_y[i] + skirts[j, k]
            s0 += weight
            s1 += weight * d
            s2 += weight * d * d
        cost = s2 / s0 - (s1 / s0) ** 2
        if cost < best_cost:
            best, best_cost = j, cost
    return best, best_cost


def window_leakage(window: np.ndarray, n_bins: int, oversample: int = 16) -> np.ndarray:
    """How much of a component's power the analysis `window` shows `d` bins away, at
    worst over where in its bin the component lies: (n_bins,) power ratios for d = 0, 1, ...
    (1 at d = 0; a periodic Hann's fall 18 dB per octave of distance), made non-increasing."""
    n = len(window)
    spectrum = np.abs(np.fft.rfft(window, oversample * n)) ** 2
    spectrum /= spectrum[0]
    out = np.empty(n_bins)
    for d in range(n_bins):
        lo, hi = max(0, (2 * d - 1) * oversample // 2), min(len(spectrum), (2 * d + 1) * oversample // 2 + 1)
        out[d] = spectrum[lo:hi].max() if lo < hi else 0.0
    return np.maximum.accumulate(out[::-1])[::-1]


def bin_means(power: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(..., K) power -> (..., len(lo)): its mean over bins lo[i] .. hi[i] - 1 (hi > lo), by prefix sums."""
    csum = np.zeros((*power.shape[:-1], power.shape[-1] + 1))
    np.cumsum(power, axis=-1, out=csum[..., 1:])
    return (csum[..., hi] - csum[..., lo]) / (hi - lo)


def octave_smooth(power: np.ndarray, octaves: float) -> np.ndarray:
    """(..., K) power -> its mean over ±`octaves` about each bin (bin k: k ± round(k (2^octaves - 1)))."""
    k = power.shape[-1]
    idx = np.arange(k)
    half = np.round(idx * (2.0 ** octaves - 1.0)).astype(int)
    return bin_means(power, np.maximum(idx - half, 0), np.minimum(idx + half + 1, k))


def power_mean_db(db: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """The mean power of levels in dB, in dB (over `axis`, or all of them: a float)."""
    out = 10.0 * np.log10(np.mean(10.0 ** (np.asarray(db, dtype=np.float64) / 10.0), axis=axis) + 1e-30)
    return float(out) if axis is None else out


def band_db(spectrum: np.ndarray) -> np.ndarray:
    """Median-over-time power in dB per bin, robust to clicks. (B, 2, bins, T) -> (B, bins)."""
    power = spectrum[:, 0] ** 2 + spectrum[:, 1] ** 2  # (B, bins, T)
    return 10.0 * np.log10(np.maximum(_median(power), 1e-30))


def _median(x: np.ndarray) -> np.ndarray:
    """Median over the last axis by partial sort (np.median sorts: 6x slower here)."""
    n = x.shape[-1]
    upper = np.partition(x, n // 2, axis=-1)[..., n // 2]
    if n % 2:
        return upper
    return 0.5 * (upper + np.partition(x, n // 2 - 1, axis=-1)[..., n // 2 - 1])


