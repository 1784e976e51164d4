//! The processor's search index over chat messages: tantivy, on disk in the processor's
//! directory. Adding a message replaces any earlier copy of it (same id), so reprocessing
//! after a restart adds nothing twice.

use std::path::Path;

use anyhow::Context as _;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, TantivyDocument, Term};

use crate::schema::ChatLine;

/// The index and its writer.
pub(crate) struct ChatIndex {
    index: Index,
    writer: IndexWriter,
    reader: IndexReader,
    id: Field,
    user: Field,
    channel: Field,
    text: Field,
    ts: Field,
}

impl ChatIndex {
    /// Opens (or creates) the index in `dir`.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<ChatIndex> {
        std::fs::create_dir_all(dir)?;
        let mut b = Schema::builder();
        let id = b.add_text_field("id", STRING | STORED);
        let user = b.add_text_field("user", STRING | STORED);
        let channel = b.add_text_field("channel", STRING | STORED);
        let text = b.add_text_field("text", TEXT | STORED);
        let ts = b.add_i64_field("ts", STORED);
        let schema = b.build();
        let index = match Index::open_in_dir(dir) {
            Ok(i) => i,
            Err(_) => Index::create_in_dir(dir, schema).context("cannot create the index")?,
        };
        let writer = index.writer_with_num_threads(1, 15_000_000)?;
        let reader = index.reader()?;
        Ok(ChatIndex {
            index,
            writer,
            reader,
            id,
            user,
            channel,
            text,
            ts,
        })
    }

    /// Adds (or replaces) a message; visible to searches after [`ChatIndex::commit`].
    pub(crate) fn add(&mut self, m: &ChatLine) -> anyhow::Result<()> {
        self.writer
            .delete_term(Term::from_field_text(self.id, &m.id));
        self.writer.add_document(doc!(
            self.id => m.id.as_str(),
            self.user => m.user.as_str(),
            self.channel => m.channel.as_str(),
            self.text => m.text.as_str(),
            self.ts => m.ts,
        ))?;
        Ok(())
    }

    /// Makes what was added searchable.
    pub(crate) fn commit(&mut self) -> anyhow::Result<()> {
        self.writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// The `limit` best matches of `question` among messages sent before `before` (ms),
    /// leaving out `exclude` (the question's own message) and questions to the bot
    /// (messages starting with one of `triggers`): they ask, they do not answer.
    pub(crate) fn search(
        &self,
        question: &str,
        before: i64,
        exclude: &str,
        triggers: &[&str],
        limit: usize,
    ) -> anyhow::Result<Vec<ChatLine>> {
        let parser = QueryParser::for_index(&self.index, vec![self.text]);
        // Words only: what users type is not query syntax.
        let words: String = question
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        let (query, _) = parser.parse_query_lenient(&words);
        let searcher = self.reader.searcher();
        let hits = searcher.search(&query, &TopDocs::with_limit(limit + 32).order_by_score())?;
        let mut out = Vec::new();
        for (_, addr) in hits {
            let d: TantivyDocument = searcher.doc(addr)?;
            let get = |f: Field| {
                d.get_first(f)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            let line = ChatLine {
                id: get(self.id),
                user: get(self.user),
                channel: get(self.channel),
                text: get(self.text),
                ts: d.get_first(self.ts).and_then(|v| v.as_i64()).unwrap_or(0),
            };
            let lower = line.text.to_lowercase();
            let asks = triggers.iter().any(|t| lower.starts_with(t));
            if line.id != exclude && !asks && line.ts < before && out.len() < limit {
                out.push(line);
            }
        }
        Ok(out)
    }

    /// Messages indexed.
    pub(crate) fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}
