/* A stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks: Rust's std (since 1.78)
 * imports ProcessPrng from it and every Rust program exits at once (code 53) without it.
 * ProcessPrng forwards to RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * Built by .ci/wine-test with mingw and copied into the Wine prefix's system32; CI only. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
