/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The wire format between libioptrace-preload.so and the ioptrace server (src/server/protocol.ts mirrors
 * it). Every request is one fixed 48-byte record, every reply one fixed 8-byte record, native endianness
 * (client and server run on the same machine).
 */
#ifndef IOPTRACE_PROTOCOL_H
#define IOPTRACE_PROTOCOL_H

#include <stdint.h>

enum ioptrace_kind {
	/* First and only request on a context socket: "this socket is an open /dev/iommu". */
	IOPTRACE_REQ_OPEN = 1,
	/* On the per-process control socket: one ioctl on a context socket. */
	IOPTRACE_REQ_IOCTL = 2,
	/* On the control socket: the program closed a descriptor of a context or access file (ino). */
	IOPTRACE_REQ_CLOSE = 3,
	/*
	 * On the control socket: a write (read) of a task's fail-nth file, which the library emulates. aux is
	 * the task the file belongs to, arg the caller's buffer, request the byte count, ino the file offset
	 * (reads). The reply's ret is the byte count.
	 */
	IOPTRACE_REQ_FAILNTH_WRITE = 4,
	IOPTRACE_REQ_FAILNTH_READ = 5,
	/*
	 * Record mode (`ioptrace record`), on the per-process record socket (IOPTRACE_RECORD_SOCK). The kernel
	 * (or the emulator standing in for it) opened a device: aux is enum ioptrace_device, and the reply's
	 * ret the number the recorder gives the new context (0: not recorded).
	 */
	IOPTRACE_REQ_RECORD_OPEN = 6,
	/*
	 * Record mode: an ioctl on a recorded context (ino: its number), before the kernel sees it, so that the
	 * recorder reads the arguments as the program wrote them. Unless the reply's err is IOPTRACE_NOT_OURS,
	 * a RECORD_DONE follows once the kernel answered.
	 */
	IOPTRACE_REQ_RECORD_CALL = 7,
	/* Record mode: the kernel's answer to that ioctl: request its return value, aux its errno (0: none). */
	IOPTRACE_REQ_RECORD_DONE = 8,
	/*
	 * Run mode, on the control socket: the text of an emulated /proc file (enum ioptrace_proc_file in aux;
	 * for STATUS, ino is the process whose file it is in its low 32 bits and the thread, or 0 for the
	 * process's own file, in its high 32 bits), written to the caller's buffer at arg of request bytes. The
	 * reply's ret is the text's length; a ret above request means the buffer was too small and nothing was
	 * written (ask again with a larger one). err IOPTRACE_NOT_OURS: not emulated, open the real file.
	 */
	IOPTRACE_REQ_PROC_FILE = 9,
	/*
	 * Run mode, on the control socket: the process's pages at [ino, ino + arg) are gone (aux: enum
	 * ioptrace_dropped, why), told after the C library's call succeeded and before it returns. The reply
	 * carries nothing.
	 */
	IOPTRACE_REQ_DROPPED = 10,
};

enum ioptrace_dropped {
	IOPTRACE_DROPPED_MUNMAP = 0,
	/* The old place of a mapping mremap moved, or the tail it cut off. */
	IOPTRACE_DROPPED_MREMAP = 1,
	/* MADV_DONTNEED (or _LOCKED, or MADV_REMOVE): private pages are zapped, shared ones stay in their object. */
	IOPTRACE_DROPPED_DONTNEED = 2,
	/* A MAP_FIXED mapping (mmap, or mremap to a fixed place) replaced what was there. */
	IOPTRACE_DROPPED_FIXED = 3,
};

enum ioptrace_proc_file {
	/* /proc/PID/status (or a thread's): VmLck and VmPin with the model's charges. */
	IOPTRACE_PROC_STATUS = 0,
	/* /proc/meminfo: HugePages_Free less the pinned huge pages no mapping holds. */
	IOPTRACE_PROC_MEMINFO = 1,
};

enum ioptrace_device {
	IOPTRACE_DEV_IOMMU = 0,
	IOPTRACE_DEV_VFIO = 1,
	/* The file of a selftest access object (IOMMU_TEST_OP_CREATE_ACCESS hands its fd to the program). */
	IOPTRACE_DEV_ACCESS = 2,
};

struct ioptrace_request {
	uint32_t kind;
	uint32_t pid;
	uint32_t tid;
	uint32_t aux; /* OPEN: enum ioptrace_device; IOCTL: 1 + the fd of a prepared access file, or 0 */
	uint64_t ino; /* inode of the context socket as the caller sees it */
	uint64_t request;
	uint64_t arg;
	/*
	 * The caller's address-space generation: a per-process count of the calls that may change its mappings
	 * (mmap, munmap, mremap, mprotect, madvise, brk, shmat, shmdt) made through the library, never 0. While
	 * it stays the same the server may keep the mappings it read last; 0 asks it to read them again.
	 */
	uint64_t mm_gen;
};

/* err: 0 success (ret is the ioctl's value), > 0 an errno, IOPTRACE_NOT_OURS: pass the call to the kernel. */
#define IOPTRACE_NOT_OURS (-1)
/*
 * err IOPTRACE_NEED_FD: the ioctl installs a new file in the caller (CREATE_ACCESS). The library opens an
 * access socket (OPEN with IOPTRACE_DEV_ACCESS) at the lowest free descriptor, as get_unused_fd_flags
 * would, and sends the same ioctl again with aux = 1 + that fd; on failure it closes the fd again.
 */
#define IOPTRACE_NEED_FD (-2)

struct ioptrace_reply {
	int32_t ret;
	int32_t err;
};

#endif
