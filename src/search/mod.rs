//! Query languages and matching: the RE2-compatible regex front end and the Pangea query language.

pub mod catalog;
pub mod ngram;
pub mod pangea_query;
pub mod re2;
