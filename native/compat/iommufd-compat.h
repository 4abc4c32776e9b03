/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Debian's linux-source-6.12 (6.12.118) ships selftests under
 * tools/testing/selftests/iommu/ that were backported from a newer tree than
 * the uAPI headers shipped next to them, so they do not compile as is. This
 * header is force-included (gcc -include) ahead of the test sources and
 * supplies the five names the tests use and the 6.12 headers lack, with the
 * values of the current upstream uAPI. The tests are never edited.
 *
 * What the running 6.12 kernel does with them is the point of the exercise:
 * it rejects the PASID mock-device flag and any non-zero flags word of
 * IOMMU_GET_HW_INFO, and those rejections show up as test failures.
 */
#ifndef IOPTRACE_IOMMUFD_COMPAT_H
#define IOPTRACE_IOMMUFD_COMPAT_H

/* Pull in the package's own uAPI first, so the guards below see it. */
#include <linux/iommufd.h>

/* enum iommu_hw_info_type: "no particular type, the driver's own" is 0. */
#ifndef IOMMU_HW_INFO_TYPE_DEFAULT
#define IOMMU_HW_INFO_TYPE_DEFAULT 0
#endif

/* enum iommufd_hw_info_flags: bit 0 says the type field carries a request. */
#ifndef IOMMU_HW_INFO_FLAG_INPUT_TYPE
#define IOMMU_HW_INFO_FLAG_INPUT_TYPE (1U << 0)
#endif

/*
 * Upstream turned struct iommu_hw_info's type word into a union of an input
 * and an output name at the same offset; 6.12 names only the output.
 */
#define in_data_type out_data_type

/* iommufd_test.h: the mock device flag asking for PASID support (bit 2)... */
#define MOCK_FLAGS_DEVICE_PASID (1 << 2)

/* ...and the PASID width in bits such a mock device reports. */
#define MOCK_PASID_WIDTH 20

#endif
