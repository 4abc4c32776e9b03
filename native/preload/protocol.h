/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The wire format between libioptrace-preload.so and the ioptrace server (src/server/protocol.ts mirrors
 * it). Every request is one fixed 40-byte record, every reply one fixed 8-byte record, native endianness
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
};

enum ioptrace_device {
	IOPTRACE_DEV_IOMMU = 0,
	IOPTRACE_DEV_VFIO = 1,
};

struct ioptrace_request {
	uint32_t kind;
	uint32_t pid;
	uint32_t tid;
	uint32_t aux; /* OPEN: enum ioptrace_device */
	uint64_t ino; /* inode of the context socket as the caller sees it */
	uint64_t request;
	uint64_t arg;
};

/* err: 0 success (ret is the ioctl's value), > 0 an errno, IOPTRACE_NOT_OURS: pass the call to the kernel. */
#define IOPTRACE_NOT_OURS (-1)

struct ioptrace_reply {
	int32_t ret;
	int32_t err;
};

#endif
