/* placeholder until the tests land */
#include "test.h"
int main(void) { test_skip("not written yet"); return 0; }
