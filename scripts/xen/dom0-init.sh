#!/bin/busybox sh
# dom0's /init in the real-Xen harness: bring up xenstored, xenconsoled and
# a bridge, run /test.sh, power off. PID 1 must never exit or exec setsid.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /run
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /run/xen /run/xenstored /run/xen-hotplug /var/log/xen/console /tmp
echo "@@ INFO dom0 $(uname -r)"
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko 2>/dev/null || echo "@@ INFO insmod $m failed"; done
mount -t xenfs xenfs /proc/xen || echo "@@ INFO xenfs mount failed"
/usr/sbin/xenstored --pid-file /run/xen/xenstored.pid
for i in 1 2 3 4 5 6 7 8 9 10; do [ -S /run/xenstored/socket ] && break; sleep 0.5; done
/usr/sbin/xen-init-dom0 >/dev/null 2>&1 || echo "@@ INFO xen-init-dom0 failed"
/usr/sbin/xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
brctl addbr xenbr0; brctl stp xenbr0 off; brctl setfd xenbr0 0
ip link set xenbr0 up; ip link set lo up
echo "@@ INFO dom0 ready at $(cut -d' ' -f1 /proc/uptime)s"
# The root file system is the initramfs, in dom0's RAM: what is left.
echo "@@ INFO dom0 memory: $(grep -E '^(MemTotal|MemAvailable|Shmem):' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
dmesg 2>/dev/null | grep -i "initramfs" | sed 's/^/@@ INFO /' || true
cd /root && . /test.sh
echo "@@ DONE"
sync
poweroff -f
while :; do sleep 3600; done
