import { describeCompleteness } from './completenessProperty';

// The property and its generators: ./completenessProperty.ts (shard 2 of its cases).
describeCompleteness(1);
