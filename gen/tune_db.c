/*
 * tune_db.c — tuning records: the file, merging, and binding them to a
 * model's kernel instances (tune.h).
 *
 * The file (JSON, written by `kgen tune`, read by `kgen compile --tuning`):
 *
 *   {"kgen_tuning": 1,
 *    "sweep": {"variants": "00112233aabbccdd", "of": 4, "shards": [2]},
 *    "records": [
 *      {"instance": "mm wtype=2 act=1 M=1 N=576 K=576 flags=0 layout=1",
 *       "target": {"cpu": "znver3", "isa": "avx2", "features": "+avx2,..."},
 *       "threads": 2, "knobs": {"pf": 1024},
 *       "us": 10.2, "default_us": 11.9, "noise": 0.012,
 *       "kgen_version": "0.1.0", "date": "2026-12-07T09:00:00Z"}, ...]}
 *
 * "sweep" (optional; `kgen tune` writes it): the variant list's hash and
 * the shards of it the file holds (gen_tuning's sweep). "knobs": {} is an
 * instance measured where the default stays. "instance" is gen_inst_key's text; "target" must equal the compile's
 * target exactly (gen_target's cpu, isa and feature list) for the record
 * to be used. Another "kgen_tuning" value (a future format) is refused.
 */
#include "tune.h"
#include "internal.h"
#include "tmpfile.h"

#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool is_knob(const char *tmpl, const char *name) { return gen_knob_find(tmpl, name) != NULL; }

void gen_inst_key(const gen_kinst *k, char *out, size_t cap)
{
    size_t at = (size_t)snprintf(out, cap, "%s", k->tmpl);
    for (int i = 0; i < k->n_params && at < cap; i++) {
        const gen_param *p = &k->params[i];
        if (is_knob(k->tmpl, p->name)) continue;
        if (p->runtime) at += (size_t)snprintf(out + at, cap - at, " %s=rt", p->name);
        else if (p->f != 0) at += (size_t)snprintf(out + at, cap - at, " %s=%.17g", p->name, p->f);
        else at += (size_t)snprintf(out + at, cap - at, " %s=%lld", p->name, (long long)p->i);
    }
}

void gen_tune_rec_target(gen_tune_rec *r, const gen_target *t)
{
    snprintf(r->cpu, sizeof r->cpu, "%s", t->cpu);
    snprintf(r->isa, sizeof r->isa, "%s", gen_isa_name(t->isa));
    snprintf(r->features, sizeof r->features, "%s", t->features);
}

bool gen_tune_rec_matches(const gen_tune_rec *r, const gen_target *t)
{
    return !strcmp(r->cpu, t->cpu) && !strcmp(r->isa, gen_isa_name(t->isa)) && !strcmp(r->features, t->features);
}

kg_status gen_tuning_add(gen_tuning *tu, const gen_tune_rec *r)
{
    if (tu->n == tu->cap) {
        int nc = tu->cap ? 2 * tu->cap : 64;
        void *q = realloc(tu->r, (size_t)nc * sizeof *tu->r);
        if (!q) return kg_err(KG_ERR_NOMEM, "out of memory");
        tu->r = q;
        tu->cap = nc;
    }
    tu->r[tu->n++] = *r;
    return KG_OK;
}

void gen_tuning_free(gen_tuning *tu)
{
    free(tu->r);
    memset(tu, 0, sizeof *tu);
}

/* ── reading ── */

static kg_status str_field(const char *path, int i, json_t *o, const char *name, char *out, size_t cap)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v)) return kg_err(KG_ERR_FORMAT, "%s: record %d: \"%s\" is missing or not a string", path, i, name);
    if (json_string_length(v) >= cap)
        return kg_err(KG_ERR_FORMAT, "%s: record %d: \"%s\" is longer than %zu bytes", path, i, name, cap - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    if (strlen(out) != json_string_length(v)) return kg_err(KG_ERR_FORMAT, "%s: record %d: \"%s\" holds a NUL", path, i, name);
    return KG_OK;
}

static kg_status num_field(const char *path, int i, json_t *o, const char *name, double lo, double hi, double *out)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_number(v)) return kg_err(KG_ERR_FORMAT, "%s: record %d: \"%s\" is missing or not a number", path, i, name);
    *out = json_number_value(v);
    if (!(*out >= lo && *out <= hi))
        return kg_err(KG_ERR_FORMAT, "%s: record %d: \"%s\" is %g, outside %g..%g", path, i, name, *out, lo, hi);
    return KG_OK;
}

static kg_status read_record(const char *path, int i, json_t *o, gen_tune_rec *r)
{
    memset(r, 0, sizeof *r);
    if (!json_is_object(o)) return kg_err(KG_ERR_FORMAT, "%s: record %d is not an object", path, i);
    json_t *tg = json_object_get(o, "target"), *kn = json_object_get(o, "knobs");
    double th = 0;
    kg_status st = str_field(path, i, o, "instance", r->inst, sizeof r->inst);
    if (!st && !json_is_object(tg)) st = kg_err(KG_ERR_FORMAT, "%s: record %d: \"target\" is missing or not an object", path, i);
    if (!st) st = str_field(path, i, tg, "cpu", r->cpu, sizeof r->cpu);
    if (!st) st = str_field(path, i, tg, "isa", r->isa, sizeof r->isa);
    if (!st) st = str_field(path, i, tg, "features", r->features, sizeof r->features);
    if (!st && !json_is_integer(json_object_get(o, "threads")))
        st = kg_err(KG_ERR_FORMAT, "%s: record %d: \"threads\" is missing or not an integer", path, i);
    if (!st) st = num_field(path, i, o, "threads", 1, 4096, &th);
    if (!st) r->threads = (int)th;
    if (!st) st = num_field(path, i, o, "us", 0, 1e12, &r->us);
    if (!st) st = num_field(path, i, o, "default_us", 0, 1e12, &r->default_us);
    if (!st) st = num_field(path, i, o, "noise", 0, 1e6, &r->noise);
    if (!st) st = str_field(path, i, o, "kgen_version", r->version, sizeof r->version);
    if (!st) st = str_field(path, i, o, "date", r->date, sizeof r->date);
    if (!st && !json_is_object(kn)) st = kg_err(KG_ERR_FORMAT, "%s: record %d: \"knobs\" is missing or not an object", path, i);
    if (st) return st;
    char tmpl[32];
    size_t tl = strcspn(r->inst, " ");
    if (tl == 0 || tl >= sizeof tmpl) return kg_err(KG_ERR_FORMAT, "%s: record %d: instance '%s' names no template", path, i, r->inst);
    memcpy(tmpl, r->inst, tl);
    tmpl[tl] = 0;
    const char *name;
    json_t *v;
    json_object_foreach(kn, name, v) {
        const gen_knob_def *d = gen_knob_find(tmpl, name);
        char range[128];
        if (!d) return kg_err(KG_ERR_FORMAT, "%s: record %d: '%s' is no knob of template '%s'", path, i, name, tmpl);
        if (r->nknob == GEN_TUNE_MAX_KNOBS) return kg_err(KG_ERR_FORMAT, "%s: record %d: more than %d knobs", path, i, GEN_TUNE_MAX_KNOBS);
        gen_knob_range(d, range, sizeof range);
        if (!json_is_integer(v) || !gen_knob_valid(d, (int64_t)json_integer_value(v)))
            return kg_err(KG_ERR_FORMAT, "%s: record %d: knob %s: expected %s", path, i, name, range);
        snprintf(r->knob[r->nknob], sizeof r->knob[0], "%s", name);
        r->val[r->nknob++] = (int64_t)json_integer_value(v);
    }
    return KG_OK; /* no knob: measured, the default stays (binds nothing) */
}

/* "sweep": {"variants": "16 hex digits", "of": N, "shards": [I, ...]} */
static kg_status read_sweep(const char *path, json_t *sw, gen_tuning *tu)
{
    json_t *v = json_object_get(sw, "variants"), *of = json_object_get(sw, "of"), *sh = json_object_get(sw, "shards");
    if (!json_is_object(sw) || !json_is_string(v) || json_string_length(v) != 16 || !json_is_integer(of) ||
        json_integer_value(of) < 1 || json_integer_value(of) > 1 << 20 || !json_is_array(sh))
        return kg_err(KG_ERR_FORMAT, "%s: \"sweep\" is not {\"variants\": 16 hex digits, \"of\": N, \"shards\": [...]}",
                      path);
    memcpy(tu->sweep, json_string_value(v), 17);
    for (int i = 0; i < 16; i++)
        if (!strchr("0123456789abcdef", tu->sweep[i]))
            return kg_err(KG_ERR_FORMAT, "%s: \"sweep\": \"variants\" is not 16 hex digits", path);
    tu->nshards = (int)json_integer_value(of);
    for (size_t i = 0; i < json_array_size(sh); i++) {
        json_t *x = json_array_get(sh, i);
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > tu->nshards)
            return kg_err(KG_ERR_FORMAT, "%s: \"sweep\": a shard outside 1..%d", path, tu->nshards);
        if (json_integer_value(x) <= 64) tu->shards |= 1ull << (json_integer_value(x) - 1);
    }
    return KG_OK;
}

kg_status gen_tuning_load(const char *path, gen_tuning *tu)
{
    memset(tu, 0, sizeof *tu);
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!root) {
        if (e.line < 0 || access(path, R_OK)) return kg_err(KG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        return kg_err(KG_ERR_FORMAT, "%s: line %d: not JSON: %s", path, e.line, e.text);
    }
    json_t *fmt = json_object_get(root, "kgen_tuning"), *recs = json_object_get(root, "records");
    kg_status st = KG_OK;
    if (!json_is_integer(fmt))
        st = kg_err(KG_ERR_FORMAT, "%s: not a kgen tuning file (no \"kgen_tuning\" format number)", path);
    else if (json_integer_value(fmt) != GEN_TUNE_FORMAT)
        st = kg_err(KG_ERR_FORMAT, "%s: tuning format %lld; this kgen reads format %d (written by another version?)", path,
                    (long long)json_integer_value(fmt), GEN_TUNE_FORMAT);
    else if (!json_is_array(recs))
        st = kg_err(KG_ERR_FORMAT, "%s: \"records\" is missing or not an array", path);
    json_t *sw = json_object_get(root, "sweep");
    if (!st && sw) st = read_sweep(path, sw, tu);
    if (!st && json_array_size(recs) > GEN_TUNE_MAX_RECORDS)
        st = kg_err(KG_ERR_FORMAT, "%s: %zu records, more than the %d a tuning file may hold", path, json_array_size(recs),
                    GEN_TUNE_MAX_RECORDS);
    for (size_t i = 0; !st && i < json_array_size(recs); i++) {
        gen_tune_rec r;
        st = read_record(path, (int)i, json_array_get(recs, i), &r);
        if (!st) st = gen_tuning_add(tu, &r);
    }
    json_decref(root);
    if (st) gen_tuning_free(tu);
    return st;
}

/* ── writing ── */

static json_t *record_json(const gen_tune_rec *r)
{
    json_t *o = json_object(), *tg = json_object(), *kn = json_object();
    json_object_set_new(o, "instance", json_string(r->inst));
    json_object_set_new(tg, "cpu", json_string(r->cpu));
    json_object_set_new(tg, "isa", json_string(r->isa));
    json_object_set_new(tg, "features", json_string(r->features));
    json_object_set_new(o, "target", tg);
    json_object_set_new(o, "threads", json_integer(r->threads));
    for (int k = 0; k < r->nknob; k++) json_object_set_new(kn, r->knob[k], json_integer(r->val[k]));
    json_object_set_new(o, "knobs", kn);
    json_object_set_new(o, "us", json_real(r->us));
    json_object_set_new(o, "default_us", json_real(r->default_us));
    json_object_set_new(o, "noise", json_real(r->noise));
    json_object_set_new(o, "kgen_version", json_string(r->version));
    json_object_set_new(o, "date", json_string(r->date));
    return o;
}

kg_status gen_tuning_save(const char *path, const gen_tuning *tu)
{
    for (int i = 0; i < tu->n; i++) /* json_real refuses them: the file would not load */
        if (!isfinite(tu->r[i].us) || !isfinite(tu->r[i].default_us) || !isfinite(tu->r[i].noise))
            return kg_err(KG_ERR_ARG, "%s: record %d (%s): a time or noise that is not a finite number", path, i,
                          tu->r[i].inst);
    json_t *root = json_object(), *recs = json_array();
    json_object_set_new(root, "kgen_tuning", json_integer(GEN_TUNE_FORMAT));
    if (tu->sweep[0]) {
        json_t *sw = json_object(), *sh = json_array();
        json_object_set_new(sw, "variants", json_string(tu->sweep));
        json_object_set_new(sw, "of", json_integer(tu->nshards));
        for (int i = 0; i < tu->nshards && i < 64; i++)
            if (tu->shards >> i & 1) json_array_append_new(sh, json_integer(i + 1));
        json_object_set_new(sw, "shards", sh);
        json_object_set_new(root, "sweep", sw);
    }
    for (int i = 0; i < tu->n; i++) json_array_append_new(recs, record_json(&tu->r[i]));
    json_object_set_new(root, "records", recs);
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!text) return kg_err(KG_ERR_NOMEM, "out of memory");
    gen_tmpout t;
    kg_status st = gen_tmpout_make(path, 0644, &t);
    const size_t n = strlen(text);
    if (!st && (write(t.fd, text, n) != (ssize_t)n || write(t.fd, "\n", 1) != 1))
        st = kg_err(KG_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (!st) st = gen_tmpout_commit(&t);
    gen_tmpout_abort(&t);
    free(text);
    return st;
}

/* ── merging ── */

static int knob_cmp(const gen_tune_rec *a, const gen_tune_rec *b)
{
    for (int k = 0; k < a->nknob && k < b->nknob; k++) {
        int c = strcmp(a->knob[k], b->knob[k]);
        if (c) return c;
        if (a->val[k] != b->val[k]) return a->val[k] < b->val[k] ? -1 : 1;
    }
    return a->nknob - b->nknob;
}

static int same_key(const gen_tune_rec *a, const gen_tune_rec *b)
{
    int c = strcmp(a->inst, b->inst);
    if (!c) c = strcmp(a->cpu, b->cpu);
    if (!c) c = strcmp(a->isa, b->isa);
    if (!c) c = strcmp(a->features, b->features);
    return c;
}

static double speedup(const gen_tune_rec *r) { return r->us > 0 ? r->default_us / r->us : 0; }

static int num_cmp(double x, double y) { return x < y ? -1 : x > y; }

/* A total order: by key; within a key the better record first (the larger
 * speedup, then the smaller knob values), then every other field, so that
 * sorting any arrangement of the same records gives the same sequence. */
static int rec_cmp(const void *x, const void *y)
{
    const gen_tune_rec *a = x, *b = y;
    int c = same_key(a, b);
    if (!c) c = num_cmp(speedup(b), speedup(a));
    if (!c) c = knob_cmp(a, b);
    if (!c) c = num_cmp(a->us, b->us);
    if (!c) c = num_cmp(a->default_us, b->default_us);
    if (!c) c = num_cmp(a->noise, b->noise);
    if (!c) c = a->threads - b->threads;
    if (!c) c = strcmp(a->date, b->date);
    if (!c) c = strcmp(a->version, b->version);
    return c;
}

void gen_tuning_sort(gen_tuning *tu)
{
    if (tu->n > 1) qsort(tu->r, (size_t)tu->n, sizeof *tu->r, rec_cmp);
}

static int key_cmp(const void *x, const void *y) { return same_key(x, y); }

bool gen_tuning_has_key(const gen_tuning *sorted, const gen_tune_rec *r)
{
    return sorted->n > 0 && bsearch(r, sorted->r, (size_t)sorted->n, sizeof *sorted->r, key_cmp) != NULL;
}

kg_status gen_tuning_merge(gen_tuning *a, const gen_tuning *b)
{
    /* one sweep's shards: their union; anything else: no sweep */
    if (!a->n && !a->sweep[0]) memcpy(a->sweep, b->sweep, sizeof a->sweep), a->nshards = b->nshards, a->shards = b->shards;
    else if (strcmp(a->sweep, b->sweep) || a->nshards != b->nshards) a->sweep[0] = 0, a->nshards = 0, a->shards = 0;
    else a->shards |= b->shards;
    for (int j = 0; j < b->n; j++) {
        kg_status st = gen_tuning_add(a, &b->r[j]);
        if (st) return st;
    }
    /* sorted, the best of each key comes first: keep it, drop the rest */
    gen_tuning_sort(a);
    int n = 0;
    for (int i = 0; i < a->n; i++)
        if (!n || same_key(&a->r[n - 1], &a->r[i])) a->r[n++] = a->r[i];
    a->n = n;
    return KG_OK;
}

/* ── binding ── */

static void set_param(gen_kinst *k, const char *name, int64_t v)
{
    for (int i = 0; i < k->n_params; i++)
        if (!strcmp(k->params[i].name, name)) {
            k->params[i].i = v;
            return;
        }
    gen_param *p = &k->params[k->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->i = v;
}

kg_status gen_tuning_apply(const gen_tuning *tu, const gen_target *t, gen_program *pg, int *applied, FILE *why)
{
    *applied = 0;
    char key[256];
    for (int i = 0; i < tu->n; i++) {
        const gen_tune_rec *r = &tu->r[i];
        if (!gen_tune_rec_matches(r, t)) {
            if (why)
                fprintf(why, "skipped: %s: measured on %s (%s), not this target %s (%s)%s\n", r->inst, r->cpu, r->isa, t->cpu,
                        gen_isa_name(t->isa), !strcmp(r->cpu, t->cpu) ? ": the CPU features differ" : "");
            continue;
        }
        int used = 0;
        for (int k = 0; k < pg->nk; k++) {
            gen_inst_key(&pg->k[k], key, sizeof key);
            if (strcmp(key, r->inst)) continue;
            if (!r->nknob) continue; /* the default stays */
            if (pg->k[k].n_params + r->nknob > GEN_MAX_PARAMS) {
                if (why) fprintf(why, "skipped: %s: the instance has no room for %d more parameters\n", r->inst, r->nknob);
                continue;
            }
            for (int j = 0; j < r->nknob; j++) set_param(&pg->k[k], r->knob[j], r->val[j]);
            used++;
        }
        *applied += used;
    }
    return KG_OK;
}

kg_status gen_tuning_keytext(const gen_tuning *tu, const gen_target *t, kg_keytext *kt)
{
    kg_status st = KG_OK;
    for (int i = 0; i < tu->n && !st; i++) {
        const gen_tune_rec *r = &tu->r[i];
        if (!gen_tune_rec_matches(r, t) || !r->nknob) continue;
        st = kg_keytext_str(kt, "tuning.instance", r->inst);
        for (int k = 0; k < r->nknob && !st; k++) {
            st = kg_keytext_str(kt, "tuning.knob", r->knob[k]);
            if (!st) st = kg_keytext_i64(kt, "tuning.value", r->val[k]);
        }
    }
    return st;
}
