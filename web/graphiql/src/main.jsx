import 'graphiql/graphiql.css';
import './page.css';

import { createRoot } from 'react-dom/client';

import { App } from './App.jsx';

createRoot(document.getElementById('root')).render(<App />);
