/*
 * tok_chat.c — chat templates (kgr_chat): the formats llama.cpp's
 * llm_chat_apply_template writes, chosen as its llm_chat_detect_template
 * chooses them.
 *
 * The blob's chat template field (gen/tokdata.c) holds the GGUF's
 * tokenizer.chat_template, or a template NAME chosen with --chat-template.
 * Recognition, in this order (llama.cpp's order, for the formats kgen has):
 *   1. the whole text is a name: chatml, llama3, gemma, phi3;
 *   2. "<|im_start|>": ChatML (but with "<|im_sep|>", Phi-4's, or
 *      "<end_of_utterance>", SmolVLM's: not recognized);
 *   3. "[INST]" or starting with "mistral": Mistral's, not recognized;
 *   4. "<|assistant|>" and "<|end|>": Phi-3;
 *   5. "<start_of_turn>": Gemma;
 *   6. "<|start_header_id|>" and "<|end_header_id|>": Llama 3;
 *   anything else: not recognized (kgr_chat says so, naming the formats).
 *
 * Formats (CONTENT as given unless it says trimmed: ASCII whitespace off
 * both ends, as llama.cpp's trim):
 *   ChatML   <|im_start|>ROLE\nCONTENT<|im_end|>\n per message; add_assistant:
 *            <|im_start|>assistant\n. A template with a literal
 *            '<|im_start|>system\n...<|im_end|>\n' and a test of the role
 *            'system' (SmolLM2's, Qwen2.5's) gets that default system message
 *            first when the first message is not a system message.
 *   Llama 3  <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT (trimmed)<|eot_id|>;
 *            add_assistant: <|start_header_id|>assistant<|end_header_id|>\n\n.
 *   Gemma    <start_of_turn>ROLE\nCONTENT (trimmed)<end_of_turn>\n, the role
 *            "assistant" written "model"; add_assistant: <start_of_turn>model\n.
 *            Gemma has no system role: system messages (trimmed, concatenated)
 *            go before the content of the next turn that is not the model's,
 *            followed by "\n\n" (llama.cpp's rule; Gemma 3's own template does
 *            the same for a first system message).
 *   Phi-3    <|ROLE|>\nCONTENT<|end|>\n per message (system: <|system|>);
 *            add_assistant: <|assistant|>\n.
 * BOS is never written as text (KGM_TOK_BOS adds the token).
 */
#include "tok_int.h"

#include <limits.h>
#include <string.h>

static const struct { const char *name; int kind; } chat_names[] = {
    {"chatml", CHAT_CHATML}, {"llama3", CHAT_LLAMA3}, {"gemma", CHAT_GEMMA}, {"phi3", CHAT_PHI3}};

static bool has(const char *s, size_t n, const char *what) { return memmem(s, n, what, strlen(what)) != NULL; }

/* ChatML's default system message: a Jinja string literal
 * '<|im_start|>system\n...<|im_end|>\n' in a template that tests for the
 * role 'system' (SmolLM2's, Qwen2.5's templates). */
static void chatml_defsys(kgr_tok *t)
{
    const char *s = t->tmpl;
    size_t n = t->tmpl_len;
    bool cond = has(s, n, "'system'") || has(s, n, "\"system\"");
    static const char head[] = "<|im_start|>system", tail[] = "<|im_end|>\n", tail_esc[] = "<|im_end|>\\n";
    for (size_t i = 1; cond && i + sizeof head - 1 <= n; i++) {
        char q = s[i - 1];
        if ((q != '\'' && q != '"') || memcmp(s + i, head, sizeof head - 1) != 0) continue;
        size_t j = i;
        while (j < n && s[j] != q) j += s[j] == '\\' ? 2 : 1;
        if (j >= n) break;
        size_t len = j - i;
        if ((len >= sizeof tail - 1 && !memcmp(s + j - (sizeof tail - 1), tail, sizeof tail - 1)) ||
            (len >= sizeof tail_esc - 1 && !memcmp(s + j - (sizeof tail_esc - 1), tail_esc, sizeof tail_esc - 1))) {
            t->defsys = s + i;
            t->defsys_len = (uint32_t)len;
            break;
        }
    }
}

void kgr_chat_init(kgr_tok *t)
{
    const char *s = t->tmpl;
    size_t n = t->tmpl_len;
    t->chat = CHAT_NONE;
    t->defsys = NULL;
    t->defsys_len = 0;
    if (!n) return;
    for (size_t i = 0; i < sizeof chat_names / sizeof *chat_names; i++)
        if (strlen(chat_names[i].name) == n && !memcmp(s, chat_names[i].name, n)) {
            t->chat = chat_names[i].kind;
            return;
        }
    if (has(s, n, "<|im_start|>")) {
        if (has(s, n, "<|im_sep|>") || has(s, n, "<end_of_utterance>")) return;
        t->chat = CHAT_CHATML;
        chatml_defsys(t);
    } else if ((n >= 7 && !memcmp(s, "mistral", 7)) || has(s, n, "[INST]")) {
        return;
    } else if (has(s, n, "<|assistant|>") && has(s, n, "<|end|>")) {
        t->chat = CHAT_PHI3;
    } else if (has(s, n, "<start_of_turn>")) {
        t->chat = CHAT_GEMMA;
    } else if (has(s, n, "<|start_header_id|>") && has(s, n, "<|end_header_id|>")) {
        t->chat = CHAT_LLAMA3;
    }
}

typedef struct wr {
    char *buf;
    size_t cap, len;
} wr;

static void wr_put(wr *w, const char *s, size_t n)
{
    if (w->len < w->cap) memcpy(w->buf + w->len, s, n < w->cap - w->len ? n : w->cap - w->len);
    w->len += n;
}
static void wr_str(wr *w, const char *s) { wr_put(w, s, strlen(s)); }

/* A Jinja string literal's body, unescaped (\n \t \r \\ \' \"). */
static void wr_jinja_lit(wr *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char d = s[++i];
            c = d == 'n' ? '\n' : d == 't' ? '\t' : d == 'r' ? '\r' : d;
            if (d != 'n' && d != 't' && d != 'r' && d != '\\' && d != '\'' && d != '"') wr_put(w, "\\", 1);
        }
        wr_put(w, &c, 1);
    }
}

static bool trim_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* s trimmed of ASCII whitespace at both ends (llama.cpp's trim) */
static void wr_trimmed(wr *w, const char *s)
{
    size_t a = 0, b = strlen(s);
    while (a < b && trim_space(s[a])) a++;
    while (b > a && trim_space(s[b - 1])) b--;
    wr_put(w, s + a, b - a);
}

static size_t trimmed_len(const char *s)
{
    size_t a = 0, b = strlen(s);
    while (a < b && trim_space(s[a])) a++;
    while (b > a && trim_space(s[b - 1])) b--;
    return b - a;
}

int kgr_has_chat(const kgr_tok *t) { return t && t->chat != CHAT_NONE; }

static void chat_gemma(wr *w, const kgm_message *msgs, int n_msgs, int add_assistant)
{
    int sys_from = -1, sys_to = -1; /* pending system messages: [sys_from, sys_to) */
    for (int i = 0; i < n_msgs; i++) {
        const char *role = msgs[i].role;
        if (!strcmp(role, "system")) {
            if (sys_from < 0) sys_from = i;
            sys_to = i + 1;
            continue;
        }
        bool model = !strcmp(role, "assistant") || !strcmp(role, "model");
        wr_str(w, "<start_of_turn>");
        wr_str(w, !strcmp(role, "assistant") ? "model" : role);
        wr_str(w, "\n");
        if (sys_from >= 0 && !model) {
            size_t total = 0;
            for (int j = sys_from; j < sys_to; j++)
                if (!strcmp(msgs[j].role, "system")) total += trimmed_len(msgs[j].content);
            if (total) { /* llama.cpp: the concatenation, when not empty */
                for (int j = sys_from; j < sys_to; j++)
                    if (!strcmp(msgs[j].role, "system")) wr_trimmed(w, msgs[j].content);
                wr_str(w, "\n\n");
            }
            sys_from = sys_to = -1;
        }
        wr_trimmed(w, msgs[i].content);
        wr_str(w, "<end_of_turn>\n");
    }
    if (add_assistant) wr_str(w, "<start_of_turn>model\n");
}

int kgr_chat(const kgr_tok *t, const kgm_message *msgs, int n_msgs, int add_assistant, char *buf, size_t cap,
             char *err, size_t errcap)
{
    if (!t) return kgr_msg(err, errcap, "chat: no tokenizer");
    if (t->chat == CHAT_NONE)
        return kgr_msg(err, errcap, t->tmpl_len ? "chat: the model's chat template is not one kgen recognizes "
                                                  "(supported: ChatML, Llama 3, Gemma, Phi-3; choose one with "
                                                  "--chat-template chatml|llama3|gemma|phi3)"
                                                : "chat: the model has no chat template (choose one with "
                                                  "--chat-template chatml|llama3|gemma|phi3)");
    if (n_msgs < 0 || (n_msgs > 0 && !msgs)) return kgr_msg(err, errcap, "chat: bad message list (%d messages)", n_msgs);
    if (!buf && cap) return kgr_msg(err, errcap, "chat: NULL buffer with capacity %zu", cap);
    for (int i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content) return kgr_msg(err, errcap, "chat: message %d has a NULL role or content", i);
    wr w = {buf, cap, 0};
    switch (t->chat) {
    case CHAT_CHATML:
        if (n_msgs > 0 && t->defsys && strcmp(msgs[0].role, "system") != 0) wr_jinja_lit(&w, t->defsys, t->defsys_len);
        for (int i = 0; i < n_msgs; i++) {
            wr_str(&w, "<|im_start|>");
            wr_str(&w, msgs[i].role);
            wr_str(&w, "\n");
            wr_str(&w, msgs[i].content);
            wr_str(&w, "<|im_end|>\n");
        }
        if (add_assistant) wr_str(&w, "<|im_start|>assistant\n");
        break;
    case CHAT_LLAMA3:
        for (int i = 0; i < n_msgs; i++) {
            wr_str(&w, "<|start_header_id|>");
            wr_str(&w, msgs[i].role);
            wr_str(&w, "<|end_header_id|>\n\n");
            wr_trimmed(&w, msgs[i].content);
            wr_str(&w, "<|eot_id|>");
        }
        if (add_assistant) wr_str(&w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_GEMMA:
        chat_gemma(&w, msgs, n_msgs, add_assistant);
        break;
    default: /* CHAT_PHI3 */
        for (int i = 0; i < n_msgs; i++) {
            wr_str(&w, "<|");
            wr_str(&w, msgs[i].role);
            wr_str(&w, "|>\n");
            wr_str(&w, msgs[i].content);
            wr_str(&w, "<|end|>\n");
        }
        if (add_assistant) wr_str(&w, "<|assistant|>\n");
        break;
    }
    if (w.len > INT_MAX) return kgr_msg(err, errcap, "chat: the formatted text is longer than INT_MAX");
    if (w.len < cap) buf[w.len] = '\0';
    return (int)w.len;
}
