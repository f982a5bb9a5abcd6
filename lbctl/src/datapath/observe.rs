//! placeholder: filled by the datapath work
