/* placeholder, replaced below */
#include "test.h"
int main(void) { test_skip("not yet"); return 0; }
