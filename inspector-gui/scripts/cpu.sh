#!/bin/sh
# The inspector's CPU use under Xvfb (software GL), as issue 15 measures it:
#   inspector-gui/scripts/cpu.sh idle     a paused lorenz run, mouse still
#   inspector-gui/scripts/cpu.sh stream   lorenz at 100 Hz, its default plots
#   inspector-gui/scripts/cpu.sh scale-idle  a paused ensemble of 100,000 keys
#   inspector-gui/scripts/cpu.sh scale       the ensemble's 100,000 keys at 10 Hz
# Prints the % of one core the inspector used over 10 s, after 5 s to settle.
# Needs xvfb-run; builds the release inspector and the debug examples.
set -e
cd "$(dirname "$0")/../.."
mode=${1:-idle}
cargo build --quiet --release -p idict-inspector
cargo build --quiet -p idict-examples -p idict-cli
export IDICT_RUNS_DIR="$(mktemp -d)"
export XDG_RUNTIME_DIR="$(mktemp -d)"
case "$mode" in
scale*)
    # Paused after a few steps: 100,000 keys, each with its history.
    run=ensemble
    target/debug/ensemble --rate 10 2>/dev/null &
    RUN=$!
    sleep 3
    if [ "$mode" = scale-idle ]; then target/debug/idict pause ensemble >/dev/null; fi
    ;;
*)
    if [ "$mode" = idle ]; then paused=--start-paused; else paused=; fi
    run=lorenz
    target/debug/lorenz --rate 100 $paused 2>/dev/null &
    RUN=$!
    sleep 1
    ;;
esac
xvfb-run -a -s "-screen 0 1400x860x24" target/release/idict-inspector $run 2>/dev/null &
sleep 6
PID=$(pgrep -x idict-inspector | head -1)
t0=$(awk '{print $14+$15}' /proc/$PID/stat)
sleep 10
t1=$(awk '{print $14+$15}' /proc/$PID/stat)
echo "inspector, $mode: $(( (t1 - t0) * 100 / (10 * $(getconf CLK_TCK)) ))% of a core over 10 s"
kill $PID $RUN 2>/dev/null || true
wait 2>/dev/null || true
rm -rf "$IDICT_RUNS_DIR" "$XDG_RUNTIME_DIR"
