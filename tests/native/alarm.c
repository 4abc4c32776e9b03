// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kselftest harness guards each test with alarm(30). Under `ioptrace kernel selftest` the model's run
 * sets IOPTRACE_ALARM_SCALE and the library stretches the alarm by it; alarm(0) answers what was left.
 */
#include <unistd.h>
#include "client.h"

int main(void)
{
	alarm(3);
	printf("left %u\n", alarm(0));
	return 0;
}
