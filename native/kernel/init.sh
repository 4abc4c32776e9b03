#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0-only
# /init of the ioptrace ground-truth initramfs. Runs each program listed in
# /tests/plan ("name args..." per line) once, with markers on the serial
# console that src/groundtruth/vm.ts reads, then prints the kernel log and
# reboots (QEMU runs with -no-reboot, so that ends the VM: tinyconfig has no
# ACPI, a power-off would only halt).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
# Keep kernel messages off the console (they would split test output lines);
# everything the kernel logs is collected from /dev/kmsg and printed at the end.
cat /dev/kmsg > /tmp/kmsg &
kmsg_reader=$!
# The selftest's huge-page variants need a hugetlb pool.
echo 128 > /proc/sys/vm/nr_hugepages
echo "@@IOPTRACE-BOOTED release=$(uname -r) hugepages=$(cat /proc/sys/vm/nr_hugepages) uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r name args; do
	[ -n "$name" ] || continue
	echo "@@IOPTRACE-BEGIN $name uptime=$(cut -d' ' -f1 /proc/uptime)"
	# shellcheck disable=SC2086
	/tests/$name $args < /dev/null 2>&1
	rc=$?
	echo "@@IOPTRACE-END $name rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
done < /tests/plan
sleep 1
kill "$kmsg_reader"
echo "@@IOPTRACE-KMSG-BEGIN"
cat /tmp/kmsg
echo "@@IOPTRACE-KMSG-END"
echo "@@IOPTRACE-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
reboot -f
