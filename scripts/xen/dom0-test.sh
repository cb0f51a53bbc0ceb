# Sourced by dom0's /init in the real-Xen harness: domus against real Xen.
# Each check prints "@@ PASS name" or "@@ FAIL name: why".
export DOMUS_STATE_DIR=/var/lib/domus HOME=/root TERM=xterm
# Under TCG, a program in dom0 now and then fails to load ("Inconsistency
# detected by ld.so", "error while loading shared libraries") or crashes
# (SIGSEGV): a run that never started is run again, and so is a query that
# crashed. Anything else a command says is kept as it is.
loader_failed() { grep -a -q -e "Inconsistency detected by ld.so" -e "error while loading shared libraries" "$1"; }
domus() {
    for _try in 1 2 3; do
        /usr/bin/domus "$@" > /tmp/domus.out 2> /tmp/domus.err
        _rc=$?
        # A query killed by a signal is asked again; a change never is.
        case "$1:$_rc" in list:1[2-9][0-9]|info:1[2-9][0-9]) continue ;; esac
        loader_failed /tmp/domus.err || break
        echo "@@ INFO ld.so failed to start domus $*; again" >&2
    done
    cat /tmp/domus.out; cat /tmp/domus.err >&2
    return $_rc
}
# xl's own table, from a run that worked: in this dom0 a program now and
# then crashes or fails to load, and an empty answer must not read as
# "the domain is gone".
xl_list() {
    for _try in 1 2 3 4 5; do
        xl list > /tmp/xl.out 2>&1 && grep -q "^Domain-0 " /tmp/xl.out && { cat /tmp/xl.out; return 0; }
        echo "@@ INFO xl list failed ($(head -c 200 /tmp/xl.out)); again" >&2
        sleep 1
    done
    return 1
}
xl_has() { xl_list | grep -q "^$1 "; }
xl_lacks() { xl_list > /tmp/xl.has && ! grep -q "^$1 " /tmp/xl.has; }
pass() { echo "@@ PASS $*"; }
fail() { echo "@@ FAIL $*"; }
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# The Time(s) column of one domain in `domus list`.
cpu_of() { domus list 2>/dev/null | awk -v n="$1" '$1 == n {print $6}'; }
state_of() { domus list 2>/dev/null | awk -v n="$1" '$1 == n {print $5}'; }
# Paused: `--p---`, or `-bp---` when Xen also reports the vCPUs blocked.
is_paused() { case "$(state_of "$1")" in ??p???) return 0 ;; esac; return 1; }
grows() { a=$(cpu_of "$1"); sleep "$2"; b=$(cpu_of "$1"); awk -v a="$a" -v b="$b" 'BEGIN {exit !(b > a)}'; }
same() { a=$(cpu_of "$1"); sleep "$2"; b=$(cpu_of "$1"); [ -n "$a" ] && [ "$a" = "$b" ]; }
wait_until() { # seconds, command...
    t=$1; shift
    while [ "$t" -gt 0 ]; do "$@" && return 0; sleep 1; t=$((t - 1)); done
    return 1
}
# Run a command in the guest's console; what it printed (after a marker the
# command line's echo cannot match) lands in /tmp/console.out.
step=0
in_guest() {
    step=$((step + 1))
    for _try in 1 2 3; do
        printf "echo STEP''-%s; %s\n" "$step" "$1" | timeout 20 /usr/bin/domus console tiny > /tmp/console.raw 2>&1
        loader_failed /tmp/console.raw || break
    done
    tr -d '\r' < /tmp/console.raw | sed -n "/^STEP-$step\$/,\$p" > /tmp/console.out
}
console_has() { grep -a -q "$1" /tmp/console.out; }
# Until the guest shows PATTERN for COMMAND (up to 5 tries; a hot-plugged
# device takes a moment to appear under TCG). On failure the last console
# transcript goes to the log.
guest_shows() { # command, pattern
    for _g in 1 2 3 4 5; do
        in_guest "$1"
        console_has "$2" && return 0
        sleep 2
    done
    echo "@@ INFO the guest never showed $2; its console said:"
    tr -d '\r' < /tmp/console.raw | tail -15 | sed 's/^/@@ INFO   /'
    return 1
}
# Until COMMAND runs to its end in the guest without printing PATTERN.
guest_lacks() { # command, pattern
    for _g in 1 2 3 4 5; do
        in_guest "$1; echo DO''NE"
        console_has "^DONE" && ! console_has "$2" && return 0
        sleep 2
    done
    echo "@@ INFO the guest still showed $2 (or did not answer); its console said:"
    tr -d '\r' < /tmp/console.raw | tail -15 | sed 's/^/@@ INFO   /'
    return 1
}

echo "@@ INFO xl list:"; xl_list | sed 's/^/@@ INFO   /'

# Domain-0, as xl sees it.
domus list > /tmp/list.out 2>&1
dom0_mem_domus=$(awk '$1 == "Domain-0" {print $3}' /tmp/list.out)
dom0_mem_xl=$(xl_list | awk '$1 == "Domain-0" {print $3}')
check "domus list shows Domain-0 with xl's memory ($dom0_mem_xl MiB)" [ -n "$dom0_mem_domus" -a "$dom0_mem_domus" = "$dom0_mem_xl" ]
check "Domain-0's CPU time is real and grows" grows Domain-0 2
domus list --json > /tmp/list.json 2>&1
check "the backend is xen" grep -q '"backend": "xen"' /tmp/list.json

# A PV guest from an sxp config.
cat > /root/tiny.sxp <<'SXP'
(vm (name tiny) (memory 128) (vcpus 1)
    (image (linux (kernel /root/domu/vmlinuz) (ramdisk /root/domu/initrd.gz) (args quiet)))
    (on_poweroff destroy) (on_reboot restart) (on_crash destroy))
SXP
if domus create /root/tiny.sxp > /tmp/create.out 2>&1; then pass "domus create of a PV guest"; else fail "domus create of a PV guest: $(cat /tmp/create.out)"; fi
domus list > /tmp/list1.out 2>&1; echo "@@ INFO domus list after create (rc $?):"; sed 's/^/@@ INFO   /' /tmp/list1.out
tiny_id=$(awk '$1 == "tiny" {print $2}' /tmp/list1.out)
sup=$(cat /var/lib/domus/xen/supervise/$tiny_id.pid 2>/dev/null)
if [ -n "$sup" ] && tr '\0' ' ' < "/proc/$sup/cmdline" 2>/dev/null | grep -q supervise; then
    pass "a supervisor process runs for tiny (pid $sup)"
else
    fail "a supervisor process runs for tiny (pid $sup)"
    echo "@@ INFO pid $sup: $(tr '\0' ' ' < "/proc/$sup/cmdline" 2>&1)"
    ls -l /var/lib/domus/xen/supervise/ 2>&1 | sed 's/^/@@ INFO   /'
    grep -a supervis /var/lib/domus/domus.log 2>&1 | tail -10 | sed 's/^/@@ INFO   /'
fi
running_or_blocked() { case "$(state_of tiny)" in r-----|-b----) return 0 ;; esac; return 1; }
if wait_until 10 running_or_blocked; then
    pass "tiny is running or blocked ($(state_of tiny))"
else
    fail "tiny is running or blocked: domus list said:"
    domus list 2>&1 | sed 's/^/@@ INFO   /'
fi
check "tiny's CPU time grows" wait_until 20 grows tiny 2
check "the guest's banner reaches its console log" wait_until 60 grep -q "domus xen guest" /var/log/xen/console/guest-tiny.log
check "domus console runs a command in the guest" guest_shows "echo XEN-CON''SOLE-\$((6*7))" XEN-CONSOLE-42

domus pause tiny
check "pause gives --p--- ($(state_of tiny))" is_paused tiny
check "CPU time is frozen while paused" same tiny 2
domus unpause tiny
check "unpause runs it again ($(state_of tiny))" sh -c "! echo '$(state_of tiny)' | grep -q '^..p'"

dd if=/dev/zero of=/root/disk.img bs=1M count=16 2>/dev/null
if domus attach tiny vbd file:/root/disk.img xvdb w > /tmp/a.out 2>&1; then pass "domus attach vbd"; else fail "domus attach vbd: $(cat /tmp/a.out)"; fi
if domus attach tiny vif bridge=xenbr0 > /tmp/v.out 2>&1; then pass "domus attach vif on xenbr0"; else fail "domus attach vif: $(cat /tmp/v.out)"; fi
check "the guest sees the disk (xvdb)" guest_shows "cat /proc/partitions" xvdb
check "the guest sees the NIC (eth0)" guest_shows "ls /sys/class/net" eth0
check "the vif is on the bridge" sh -c 'ls /sys/class/net/xenbr0/brif | grep -q vif'
# I/O counters from Domain-0's sysfs (blkback, netback), as xentop.
io_of() { domus list --json tiny 2>/dev/null | grep -o "\"$1\": [0-9]*" | head -1 | awk '{print $2}'; }
in_guest "dd if=/dev/zero of=/dev/xvdb bs=64k count=32 conv=fsync"
wr=$(io_of wr_bytes)
check "list --json counts the guest's 2 MiB written to xvdb (wr_bytes ${wr:-none})" [ "${wr:-0}" -ge 2097152 ]
in_guest "ip link set eth0 up; ip addr add 10.213.0.2/24 dev eth0"
in_guest "ping -c 2 -W 1 10.213.0.1 >/dev/null 2>&1"
tx=$(io_of tx_bytes)
check "list --json counts what the guest sent on its vif (tx_bytes ${tx:-none})" [ "${tx:-0}" -gt 0 ]
domus detach tiny xvdb > /tmp/d.out 2>&1 && pass "domus detach xvdb" || fail "domus detach xvdb: $(cat /tmp/d.out)"
domus detach tiny vif0 > /tmp/d.out 2>&1 && pass "domus detach vif0" || fail "domus detach vif0: $(cat /tmp/d.out)"
check "the disk is gone from the guest" guest_lacks "cat /proc/partitions" xvdb
check "the NIC is gone from the guest" guest_lacks "ls /sys/class/net" eth0

# The TUI in a pseudo-terminal: pause tiny with its keys.
# Keys go in once the table is drawn (a debug build under TCG starts slowly).
# The loader failing to start domus or script is a run that never started.
for _try in 1 2 3; do
    rm -f /tmp/tui.out
    (wait_until 60 grep -a -q -e tiny -e "ld.so" -e "shared libraries" /tmp/tui.out; sleep 1; printf 'j'; sleep 1; printf 'p'
     wait_until 20 is_paused tiny
     sleep 1; printf 'q') | \
        TERM=xterm-256color timeout 120 script -qfec "stty rows 36 cols 120; /usr/bin/domus" /tmp/tui.out > /dev/null 2>&1
    loader_failed /tmp/tui.out || break
    echo "@@ INFO ld.so failed to start the TUI; again"
done
check "the TUI drew the Xen host (Domain-0, tiny)" sh -c 'grep -a -q "xen backend" /tmp/tui.out && grep -a -q "Domain-0" /tmp/tui.out'
check "the TUI's p key paused tiny ($(state_of tiny))" is_paused tiny
check "the TUI left the alternate screen" grep -a -q "$(printf '\033')\[?1049l" /tmp/tui.out
domus unpause tiny

# Guest poweroff → shut down (poweroff) → on_poweroff destroy, applied by
# tiny's supervisor: no domus command runs meanwhile, only xl.
in_guest "poweroff"
check "with no domus running, the supervisor applies on_poweroff destroy" \
    wait_until 40 xl_lacks tiny
domus info tiny > /tmp/info.out 2>&1
check "the timeline has the poweroff and on_poweroff destroy" sh -c \
    'grep -q "shut down (poweroff)" /tmp/info.out && grep -q "on_poweroff policy applied: destroy" /tmp/info.out'
supervisor_gone() { ! tr '\0' ' ' < "/proc/$sup/cmdline" 2>/dev/null | grep -q supervise; }
check "the supervisor exited with its domain" wait_until 20 supervisor_gone
domus events --json tiny > /tmp/events.json 2>&1
check "the journal has the guest's poweroff, seen by its supervisor" sh -c \
    'grep "\"event\":\"shut_down\"" /tmp/events.json | grep -q "\"kind\":\"guest\""'
check "the journal has on_poweroff applied by the supervisor" sh -c \
    'grep "\"event\":\"policy_applied\"" /tmp/events.json | grep -q "\"kind\":\"supervisor\""'

check "tiny builds again" domus create /root/tiny.sxp
check "tiny is in xl list" xl_has tiny
domus destroy tiny
check "destroy: tiny is gone from xl list" xl_lacks tiny

# Three creates of one name at once: exactly one domain.
cat > /root/dup.sxp <<'SXP'
(vm (name dup) (memory 128) (vcpus 1)
    (image (linux (kernel /root/domu/vmlinuz) (ramdisk /root/domu/initrd.gz) (args quiet))))
SXP
for i in 1 2 3; do
    (/usr/bin/domus create /root/dup.sxp > /tmp/dup.$i.out 2>&1; echo $? > /tmp/dup.$i.rc) &
done
wait
won=$(grep -l '^0$' /tmp/dup.*.rc 2>/dev/null | wc -l)
check "three creates of one name at once: exactly one succeeds ($won)" [ "$won" = 1 ]
[ "$won" = 1 ] || for i in 1 2 3; do echo "@@ INFO create $i (rc $(cat /tmp/dup.$i.rc)): $(head -c 400 /tmp/dup.$i.out)"; done
check "the others say it exists" sh -c 'grep -l "already exists" /tmp/dup.*.out | wc -l | grep -q "^2$"'
dups=$(xl_list | grep -c "^dup ")
check "xl has exactly one dup ($dups)" [ "$dups" = 1 ]
domus destroy dup
check "dup is gone after destroy" xl_lacks dup

# The backend-generic conformance suite (tests/conformance.rs), on Xen.
for _try in 1 2 3; do
    DOMUS_XEN_GUEST_KERNEL=/root/domu/vmlinuz DOMUS_XEN_GUEST_INITRD=/root/domu/initrd.gz \
        timeout 300 conformance --ignored --exact xen --test-threads 1 > /tmp/conformance.out 2>&1
    loader_failed /tmp/conformance.out || break
done
if grep -q "test result: ok. 1 passed" /tmp/conformance.out; then
    pass "the conformance suite (tests/conformance.rs) passes on Xen"
else
    fail "the conformance suite on Xen:"
    tail -25 /tmp/conformance.out | sed 's/^/@@ INFO   /'
fi

# A domain that does not exist is said so, not a raw toolstack failure.
domus pause 4242 > /tmp/nodom.out 2>&1
check "an unknown domid gets a clear error ($(cat /tmp/nodom.out))" grep -qi "no domain" /tmp/nodom.out

# plan9 is refused with a typed error naming the backend.
cat > /root/p9.sxp <<'SXP'
(vm (name p9) (memory 64) (image (plan9 (kernel /root/domu/vmlinuz))))
SXP
domus create /root/p9.sxp > /tmp/p9.out 2>&1
check "plan9 is refused by the xen backend" grep -q "not supported by the xen backend" /tmp/p9.out

echo "@@ INFO domus.log warnings:"; grep -E "WARN|ERROR|supervisor:" /var/lib/domus/domus.log 2>/dev/null | tail -15 | sed 's/^/@@ INFO   /'
