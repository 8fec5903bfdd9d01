/*
 * bench_gguf.c — how long kg_gguf_open takes on real models, beside the
 * floor of any reader: open + fstat + mmap + touching the header pages
 * (measured in the same run). Prints a table; writes JSON to argv[1].
 *
 * usage: bench-gguf OUT.json MODEL.gguf...
 */
#include "bench.h"
#include "kgen.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { RUNS = 31 };

/* The floor: map the file and read every byte of its metadata region. */
static double floor_once(const char *path, uint64_t header_bytes)
{
    double t = bench_now();
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) { perror(path); exit(1); }
    const volatile unsigned char *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    unsigned sum = 0;
    for (uint64_t i = 0; i < header_bytes; i += 64) sum += p[i];
    munmap((void *)p, (size_t)sb.st_size);
    (void)sum;
    return bench_now() - t;
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: bench-gguf OUT.json MODEL.gguf...\n"); return 2; }
    FILE *js = fopen(argv[1], "w");
    if (!js) { perror(argv[1]); return 1; }
    fprintf(js, "{\"bench\":\"gguf_open\",\"runs\":%d,\"models\":[", RUNS);
    printf("%-36s %8s %8s %12s %12s %8s\n", "model", "keys", "tensors", "open ms", "floor ms", "ratio");
    for (int m = 2; m < argc; m++) {
        double t_open[RUNS], t_floor[RUNS];
        kg_gguf *g;
        if (kg_gguf_open(argv[m], &g)) { fprintf(stderr, "%s\n", kg_last_error()); return 1; }
        uint64_t hdr = kg_gguf_data_offset(g), nkv = kg_gguf_n_kv(g), nt = kg_gguf_n_tensors(g);
        kg_gguf_close(g);
        for (int r = 0; r < RUNS; r++) { /* interleaved: A B A B */
            double t = bench_now();
            if (kg_gguf_open(argv[m], &g)) { fprintf(stderr, "%s\n", kg_last_error()); return 1; }
            kg_gguf_close(g);
            t_open[r] = bench_now() - t;
            t_floor[r] = floor_once(argv[m], hdr);
        }
        double mo = bench_median(t_open, RUNS) * 1e3, mf = bench_median(t_floor, RUNS) * 1e3;
        const char *base = argv[m];
        for (const char *s = argv[m]; *s; s++) if (*s == '/') base = s + 1;
        printf("%-36s %8llu %8llu %12.3f %12.3f %8.1f\n", base, (unsigned long long)nkv, (unsigned long long)nt, mo, mf, mo / mf);
        fprintf(js, "%s{\"model\":\"%s\",\"n_kv\":%llu,\"n_tensors\":%llu,\"header_bytes\":%llu,"
                "\"open_ms_median\":%.4f,\"open_ms_min\":%.4f,\"open_ms_max\":%.4f,"
                "\"floor_ms_median\":%.4f,\"floor_ms_min\":%.4f,\"floor_ms_max\":%.4f}",
                m > 2 ? "," : "", base, (unsigned long long)nkv, (unsigned long long)nt, (unsigned long long)hdr,
                mo, t_open[0] * 1e3, t_open[RUNS - 1] * 1e3, mf, t_floor[0] * 1e3, t_floor[RUNS - 1] * 1e3);
    }
    fprintf(js, "]}\n");
    fclose(js);
    printf("(median of %d interleaved runs; floor = open+mmap+touch the metadata pages; JSON: %s)\n", RUNS, argv[1]);
    return 0;
}
