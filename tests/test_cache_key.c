/*
 * test_cache_key.c — the cache's key text (runtime/cache_key.c): equal texts
 * give equal keys, any change a different one, values cannot forge lines,
 * errors are sticky, and the text and its XXH3-128 are what they should be:
 * the text written out here by hand, the hash computed independently by
 * Python's xxhash package (skipped, with the reason, without it).
 */
#include "kgen.h"
#include "kt.h"

#include <stdlib.h>
#include <string.h>

static bool key_eq(kg_key a, kg_key b) { return a.hi == b.hi && a.lo == b.lo; }

static kg_key build(int variant)
{
    kg_keytext *t;
    kg_key k = {0, 0};
    if (kg_keytext_new(&t) != KG_OK) return k;
    kg_keytext_str(t, variant == 1 ? "modl" : "model", variant == 2 ? "llamb" : "llama");
    kg_keytext_i64(t, "n_embd", variant == 3 ? 577 : 576);
    kg_keytext_u64(t, "n_vocab", variant == 4 ? 49153 : 49152);
    kg_keytext_f64(t, "eps", variant == 5 ? 1e-6 : 1e-5);
    kg_keytext_f64(t, "zero", variant == 6 ? -0.0 : 0.0);
    kg_keytext_blob(t, "template", variant == 7 ? "int f;" : "int g;", 6);
    if (variant == 8) kg_keytext_str(t, "extra", "");
    kg_keytext_finish(t, &k);
    kg_keytext_free(t);
    return k;
}

/* XXH3-128 of `text` by Python's xxhash package into hex[33]; false if it
 * cannot run (no Python, or no xxhash). */
static bool python_xxh3_128(const char *text, char hex[33])
{
    char out[256], err[1024];
    char *argv[] = {"/usr/bin/env", (char *)kt_python(), "-c",
                    "import sys, xxhash; print(xxhash.xxh3_128_hexdigest(sys.argv[1].encode()))",
                    (char *)text, NULL};
    if (kt_run(argv, out, sizeof out, err, sizeof err) != 0 || strlen(out) != 33) return false;
    memcpy(hex, out, 32);
    hex[32] = 0;
    return true;
}

KT_TEST(cache_keytext)
{
    kg_key base = build(0);
    KT_CHECK(key_eq(base, build(0)));
    for (int v = 1; v <= 8; v++) KT_CHECKF(!key_eq(base, build(v)), "variant %d gives the same key", v);

    kg_keytext *t;
    KT_REQUIRE(kg_keytext_new(&t) == KG_OK);
    KT_CHECK(!strcmp(kg_keytext_text(t), "kgen.cache.format=1\n"));
    KT_CHECK(kg_keytext_str(t, "target.triple", "x86_64-pc-linux-gnu") == KG_OK);
    KT_CHECK(kg_keytext_i64(t, "n_ctx", -8192) == KG_OK);
    KT_CHECK(kg_keytext_u64(t, "n_ff", 18446744073709551615u) == KG_OK);
    KT_CHECK(kg_keytext_f64(t, "rope.base", 0.5) == KG_OK);
    KT_CHECK(kg_keytext_f64(t, "eps", 1e-5) == KG_OK);
    KT_CHECK(kg_keytext_str(t, "opts", "a\\b\nc=d") == KG_OK);
    const char *want = "kgen.cache.format=1\n"
                       "target.triple=x86_64-pc-linux-gnu\n"
                       "n_ctx=-8192\n"
                       "n_ff=18446744073709551615\n"
                       "rope.base=0x1p-1\n"
                       "eps=0x1.4f8b588e368f1p-17\n" /* Python: (1e-5).hex() */
                       "opts=a\\\\b\\nc=d\n";
    KT_CHECKF(!strcmp(kg_keytext_text(t), want), "text:\n%s", kg_keytext_text(t));
    kg_key k;
    KT_CHECK(kg_keytext_finish(t, &k) == KG_OK);
    char hex[33], ref[33], blob_ref[33];
    kg_key_hex(k, hex);
    KT_CHECK(strlen(hex) == 32);

    /* a value cannot forge a line: "a=x\ny=z" differs from a=x, y=z */
    kg_keytext *u, *w;
    KT_REQUIRE(kg_keytext_new(&u) == KG_OK && kg_keytext_new(&w) == KG_OK);
    kg_keytext_str(u, "a", "x\ny=z");
    kg_keytext_str(w, "a", "x");
    kg_keytext_str(w, "y", "z");
    kg_key ku, kw;
    KT_CHECK(kg_keytext_finish(u, &ku) == KG_OK && kg_keytext_finish(w, &kw) == KG_OK && !key_eq(ku, kw));

    /* errors are sticky: no key for a partial text */
    KT_CHECK(kg_keytext_str(u, "Bad", "v") == KG_ERR_ARG);
    KT_CHECK(strstr(kg_last_error(), "Bad") != NULL);
    KT_CHECK(kg_keytext_i64(u, "fine", 1) == KG_ERR_ARG);
    KT_CHECK(kg_keytext_finish(u, &ku) == KG_ERR_ARG && ku.hi == 0 && ku.lo == 0);
    KT_CHECK(!strcmp(kg_keytext_text(u), ""));
    const char *bad_names[] = {"", "a=b", "a\nb", "x y", NULL};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        kg_keytext *b;
        KT_REQUIRE(kg_keytext_new(&b) == KG_OK);
        KT_CHECKF(kg_keytext_str(b, bad_names[i], "v") == KG_ERR_ARG, "name %zu accepted", i);
        kg_keytext_free(b);
    }
    KT_CHECK(kg_keytext_str(w, "s", NULL) == KG_ERR_ARG);
    kg_keytext_free(u);
    kg_keytext_free(w);

    /* the blob line holds the content's XXH3-128 */
    KT_REQUIRE(kg_keytext_new(&u) == KG_OK);
    KT_CHECK(kg_keytext_blob(u, "src", "hello, kernel", 13) == KG_OK);
    const char *line = strstr(kg_keytext_text(u), "src=");
    KT_CHECK(line && strlen(line) == 4 + 32 + 1);

    /* independently computed hashes */
    bool have_py = python_xxh3_128(want, ref) && python_xxh3_128("hello, kernel", blob_ref);
    if (have_py) {
        KT_CHECKF(!strcmp(hex, ref), "key %s, Python's xxhash says %s", hex, ref);
        KT_CHECKF(line && !strncmp(line + 4, blob_ref, 32), "blob line %s, Python's xxhash says %s", line, blob_ref);
    }
    kg_keytext_free(u);
    kg_keytext_free(t);
    if (!have_py) KT_SKIP("the independent XXH3-128 check needs Python's 'xxhash' package (pip install xxhash)");
}
