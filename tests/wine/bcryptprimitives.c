/* Wine 8.0 has no bcryptprimitives.dll, and every Windows binary of Rust 1.78 or later imports
 * ProcessPrng from it: without the DLL such a binary exits 53 before main and prints nothing.
 * This one gives ProcessPrng what Windows does, random bytes from the system's generator. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
